//! Helpers on the generated [`Value`], [`Field`] and [`Record`] types.

use crate::{Field, FieldType, Record, Value};

impl Value {
    /// The type of a non-null value.
    pub fn field_type(&self) -> Option<FieldType> {
        Some(match self {
            Value::Null => return None,
            Value::Boolean(_) => FieldType::Boolean,
            Value::Integer(_) => FieldType::Integer,
            Value::Float(_) => FieldType::Float,
            Value::Decimal(_) => FieldType::Decimal,
            Value::Text(_) => FieldType::Text,
            Value::Date(_) => FieldType::Date,
            Value::Timestamp(_) => FieldType::Timestamp,
            Value::Bytes(_) => FieldType::Bytes,
            Value::Json(_) => FieldType::Json,
        })
    }

    /// Whether this is [`Value::Null`].
    pub fn is_null(&self) -> bool {
        matches!(self, Value::Null)
    }

    /// The text of a text-like value (text, decimal, date, timestamp, json).
    pub fn as_str(&self) -> Option<&str> {
        match self {
            Value::Text(s) | Value::Decimal(s) | Value::Date(s) | Value::Timestamp(s) | Value::Json(s) => {
                Some(s)
            }
            _ => None,
        }
    }

    /// The integer of an integer value.
    pub fn as_integer(&self) -> Option<i64> {
        match self {
            Value::Integer(i) => Some(*i),
            _ => None,
        }
    }

    /// The number of an integer, float or decimal value.
    pub fn as_f64(&self) -> Option<f64> {
        match self {
            Value::Integer(i) => Some(*i as f64),
            Value::Float(f) => Some(*f),
            Value::Decimal(d) => d.parse().ok(),
            _ => None,
        }
    }

    /// The value as one line of text, as a person would read it.
    pub fn to_display_string(&self) -> String {
        match self {
            Value::Null => String::new(),
            Value::Boolean(b) => b.to_string(),
            Value::Integer(i) => i.to_string(),
            Value::Float(f) => f.to_string(),
            Value::Bytes(b) => format!("<{} bytes>", b.len()),
            Value::Text(s) | Value::Decimal(s) | Value::Date(s) | Value::Timestamp(s) | Value::Json(s) => {
                s.clone()
            }
        }
    }
}

impl From<bool> for Value {
    fn from(v: bool) -> Self {
        Value::Boolean(v)
    }
}
impl From<i64> for Value {
    fn from(v: i64) -> Self {
        Value::Integer(v)
    }
}
impl From<f64> for Value {
    fn from(v: f64) -> Self {
        Value::Float(v)
    }
}
impl From<&str> for Value {
    fn from(v: &str) -> Self {
        Value::Text(v.to_owned())
    }
}
impl From<String> for Value {
    fn from(v: String) -> Self {
        Value::Text(v)
    }
}
impl<T: Into<Value>> From<Option<T>> for Value {
    fn from(v: Option<T>) -> Self {
        v.map_or(Value::Null, Into::into)
    }
}

impl Field {
    /// A field with this name and value.
    pub fn new(name: impl Into<String>, value: impl Into<Value>) -> Self {
        Field { name: name.into(), value: value.into() }
    }
}

impl Record {
    /// An empty, live record with this id.
    ///
    /// ```
    /// use synchost_plugin_sdk::{Record, Value};
    ///
    /// let record = Record::new("42").with("name", "Ada").with("age", 36);
    /// assert_eq!(record.text("name"), Some("Ada"));
    /// assert_eq!(record.get("age"), Some(&Value::Integer(36)));
    /// ```
    pub fn new(id: impl Into<String>) -> Self {
        Record { id: id.into(), version: None, deleted: false, fields: Vec::new(), born: None }
    }

    /// Builder form of [`Record::set`].
    pub fn with(mut self, name: &str, value: impl Into<Value>) -> Self {
        self.set(name, value);
        self
    }

    /// The value of a field, if the record has it.
    pub fn get(&self, name: &str) -> Option<&Value> {
        self.fields.iter().find(|f| f.name == name).map(|f| &f.value)
    }

    /// The text of a text-like field; `None` when absent, null or not text.
    pub fn text(&self, name: &str) -> Option<&str> {
        self.get(name).and_then(Value::as_str)
    }

    /// Sets a field, replacing its value if the record has it already.
    pub fn set(&mut self, name: &str, value: impl Into<Value>) {
        let value = value.into();
        match self.fields.iter_mut().find(|f| f.name == name) {
            Some(field) => field.value = value,
            None => self.fields.push(Field { name: name.to_owned(), value }),
        }
    }

    /// Removes a field and returns its value.
    pub fn take(&mut self, name: &str) -> Option<Value> {
        let index = self.fields.iter().position(|f| f.name == name)?;
        Some(self.fields.remove(index).value)
    }

    /// Renames a field; does nothing when the record does not have it.
    pub fn rename(&mut self, from: &str, to: &str) {
        if let Some(value) = self.take(from) {
            self.set(to, value);
        }
    }
}
