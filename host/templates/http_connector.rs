//! A connector to the tickets of a tracker's JSON API over HTTP: the
//! `tickets-service` of synchost's docs, or your own system (change the
//! paths, the fields and `Ticket`).
//!
//! - `read` follows a change feed ordered by (change time, id): the cursor is
//!   the last pair returned, so no change is skipped or returned twice.
//! - `fetch` asks for each ticket by id; one the service no longer has is left out.
//! - `write` sends each change with `If-Match: <version the host read>`: a
//!   ticket changed since is a conflict, not an overwrite. A create carries
//!   the host's origin, so a create sent twice is found instead of made twice.
//! - HTTP statuses become problems an admin can act on (`problem`); when the
//!   service stops answering part-way through a batch, what was applied
//!   stays applied and the rest is retried.
//! - `probe` asks the service who the token is and whether it may write.

use serde::Deserialize;
use synchost_plugin_sdk::host::{http, Request, Response};
use synchost_plugin_sdk::prelude::*;

#[derive(Deserialize)]
struct Settings {
    /// The service's address, e.g. `http://127.0.0.1:8765`; the endpoint
    /// grants it in `grants.http.allow`.
    url: String,
    /// The API token. The config says `token = "${TICKETS_TOKEN}"`: the host
    /// substitutes it and masks it everywhere it shows text.
    token: String,
}

/// A ticket as the service sends it.
#[derive(Deserialize)]
struct Ticket {
    id: u64,
    title: String,
    status: String,
    assignee: Option<String>,
    updated_at: String,
    #[serde(default)]
    deleted: bool,
}

#[derive(Deserialize)]
struct Tickets {
    tickets: Vec<Ticket>,
}

#[derive(Deserialize)]
struct Me {
    can_write: bool,
}

const ENTITY: &str = "tickets";
/// Fields a change may set, as the service names them.
const WRITABLE: [&str; 3] = ["title", "status", "assignee"];

fn record(ticket: Ticket) -> Record {
    let mut record = Record::new(ticket.id.to_string())
        .with("title", ticket.title)
        .with("status", ticket.status)
        .with("assignee", ticket.assignee.map_or(Value::Null, Value::Text));
    // The change time is the version: the host compares it to detect
    // changes, and time-based conflict policies read it.
    record.version = Some(ticket.updated_at);
    record.deleted = ticket.deleted;
    record
}

fn check_entity(entity: &str) -> Result<(), Error> {
    if entity == ENTITY {
        Ok(())
    } else {
        Err(Error::new("unknown-entity", format!("there is no entity `{entity}`")).with_hint("this connector has one entity: tickets"))
    }
}

/// Percent-encodes a query value (origins and change times).
fn encode(text: &str) -> String {
    text.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'.' | b'_' | b'~' => (b as char).to_string(),
            _ => format!("%{b:02X}"),
        })
        .collect()
}

/// What the service said went wrong (its `{"error": ...}`), or its body.
fn service_said(response: &Response) -> String {
    #[derive(Deserialize)]
    struct Said {
        error: String,
    }
    response.json::<Said>().map(|said| said.error).unwrap_or_else(|_| response.text().chars().take(200).collect())
}

/// What an HTTP status means for the admin: a problem with its fix.
/// Never put the token in one: name the setting instead.
fn problem(doing: &str, response: &Response) -> Error {
    let said = service_said(response);
    let status = response.status;
    match status {
        401 => Error::new("unauthorized", format!("{doing}: the service refused the token in `token` (HTTP 401: {said})"))
            .with_hint("check the environment variable the endpoint's `token` setting names, and that the token is still valid"),
        403 => Error::new("forbidden", format!("{doing}: the token may not do this (HTTP 403: {said})"))
            .with_hint("give the service account write access, or let the pipeline only read from this side"),
        404 => Error::new("not-found", format!("{doing}: the service has no such ticket (HTTP 404)")),
        400 | 422 => Error::new("invalid", format!("{doing}: the service refused it: {said}"))
            .with_hint("fix the record where it comes from; the host sends it again when it changes"),
        429 | 502 | 503 | 504 => Error::transient("unavailable", format!("{doing}: the service is not taking requests now (HTTP {status})"))
            .with_hint("the host retries later; if it lasts, check the service"),
        500..=599 => Error::transient("server-error", format!("{doing}: the service failed (HTTP {status}: {said})")),
        _ => Error::new("unexpected-status", format!("{doing}: the service answered HTTP {status}: {said}")),
    }
}

/// Whether the service is not taking requests at all: the rest of a batch waits.
fn stops_the_batch(error: &Error) -> bool {
    matches!(error.problem().code.as_str(), "unavailable" | "http-unreachable" | "http-timeout" | "http-error")
}

pub struct TicketsConnector {
    url: String,
    token: String,
}

impl TicketsConnector {
    fn send(&self, request: Request, doing: &str) -> Result<Response, Error> {
        let request = request.header("authorization", format!("Bearer {}", self.token)).header("accept", "application/json");
        http::send(&request).map_err(|error| error.context(doing))
    }

    /// A request whose answer must be 200 (or `created`), as JSON.
    fn expect<T: serde::de::DeserializeOwned>(&self, request: Request, doing: &str) -> Result<T, Error> {
        let response = self.send(request, doing)?;
        match response.status {
            200 | 201 => response.json::<T>().map_err(|error| error.context(doing)),
            _ => Err(problem(doing, &response)),
        }
    }

    /// The fields of a change as the service's JSON body.
    fn body(change: &Change) -> serde_json::Value {
        let mut body = serde_json::Map::new();
        for field in change.fields.iter().filter(|f| WRITABLE.contains(&f.name.as_str())) {
            let value = match &field.value {
                Value::Null => serde_json::Value::Null,
                other => serde_json::Value::String(other.to_display_string()),
            };
            body.insert(field.name.clone(), value);
        }
        serde_json::Value::Object(body)
    }

    fn create(&self, change: &Change) -> Result<Outcome, Error> {
        let doing = "creating a ticket";
        if change.repeated {
            // Sent before without a known outcome: it may exist already.
            let url = format!("{}/api/tickets?origin={}", self.url, encode(&change.origin));
            let found: Tickets = self.expect(Request::new("GET", url), "looking for a ticket by its origin")?;
            if let Some(ticket) = found.tickets.into_iter().find(|t| !t.deleted) {
                return self.update(&ticket.id.to_string(), None, change);
            }
        }
        let mut body = Self::body(change);
        body["origin"] = serde_json::Value::String(change.origin.clone());
        let request = Request::new("POST", format!("{}/api/tickets", self.url)).json(&body)?;
        let response = match self.send(request, doing) {
            // Sent, and no answer: the service may have made it.
            Err(error) if error.problem().code != "http-unreachable" => {
                return Ok(Outcome::Rejected(Error::transient("outcome-unknown", error.problem().message.clone()).into()));
            }
            other => other?,
        };
        match response.status {
            201 | 200 => {
                let ticket: Ticket = response.json()?;
                Ok(Outcome::Applied(Applied { id: ticket.id.to_string(), version: Some(ticket.updated_at) }))
            }
            _ => Err(problem(doing, &response)),
        }
    }

    fn update(&self, id: &str, expected: Option<&str>, change: &Change) -> Result<Outcome, Error> {
        let doing = format!("changing ticket {id}");
        let mut request = Request::new("PATCH", format!("{}/api/tickets/{id}", self.url)).json(&Self::body(change))?;
        if let Some(expected) = expected {
            request = request.header("if-match", expected);
        }
        self.changed(request, &doing)
    }

    fn delete(&self, id: &str, expected: Option<&str>) -> Result<Outcome, Error> {
        let mut request = Request::new("DELETE", format!("{}/api/tickets/{id}", self.url));
        if let Some(expected) = expected {
            request = request.header("if-match", expected);
        }
        self.changed(request, &format!("deleting ticket {id}"))
    }

    /// The outcome of a PATCH or DELETE: applied, or a conflict with the
    /// ticket as it is now when it changed since the version in `If-Match`.
    fn changed(&self, request: Request, doing: &str) -> Result<Outcome, Error> {
        #[derive(Deserialize)]
        struct Moved {
            current: Ticket,
        }
        let response = self.send(request, doing)?;
        match response.status {
            200 => {
                let ticket: Ticket = response.json()?;
                Ok(Outcome::Applied(Applied { id: ticket.id.to_string(), version: Some(ticket.updated_at) }))
            }
            412 => Ok(Outcome::Conflict(record(response.json::<Moved>()?.current).into())),
            _ => Err(problem(doing, &response)),
        }
    }

    fn apply(&self, change: &Change) -> Result<Outcome, Error> {
        let expected = change.expected_version.as_deref();
        match (&change.kind, &change.target_id) {
            (ChangeKind::Delete, Some(id)) => self.delete(id, expected),
            (ChangeKind::Delete, None) => Ok(Outcome::Rejected(Error::new("no-target", "a delete without a ticket id").into())),
            (_, Some(id)) => self.update(id, expected, change),
            (_, None) => self.create(change),
        }
    }
}

impl Connector for TicketsConnector {
    fn new(context: &Context) -> Result<Self, Error> {
        let settings: Settings = context.settings()?;
        Ok(TicketsConnector { url: settings.url.trim_end_matches('/').to_owned(), token: settings.token })
    }

    fn describe(&self) -> Result<Vec<EntityDef>, Error> {
        let field = |name: &str, type_: FieldType, nullable: bool, read_only: bool| FieldDef { name: name.into(), type_, nullable, read_only };
        Ok(vec![EntityDef {
            name: ENTITY.into(),
            key: "id".into(),
            fields: vec![
                field("id", FieldType::Integer, false, true),
                field("title", FieldType::Text, false, false),
                field("status", FieldType::Text, false, false),
                field("assignee", FieldType::Text, true, false),
            ],
            change_feed: true,
            // Deleted tickets stay in the feed, marked deleted.
            soft_delete: true,
            writable: true,
            finds_by_origin: true,
        }])
    }

    fn read(&mut self, entity: &str, cursor: Option<String>, limit: u32) -> Result<ReadBatch, Error> {
        check_entity(entity)?;
        let (since, after) = match cursor.as_deref().and_then(|c| c.rsplit_once('|')) {
            Some((time, id)) => (time.to_owned(), id.parse::<u64>().unwrap_or(0)),
            None => (String::new(), 0),
        };
        let url = format!("{}/api/tickets?since={}&after={after}&limit={limit}", self.url, encode(&since));
        let page: Tickets = self.expect(Request::new("GET", url), "reading changed tickets")?;
        let records: Vec<Record> = page.tickets.into_iter().map(record).collect();
        let next = records.last().map(|last| format!("{}|{}", last.version.clone().unwrap_or_default(), last.id)).or(cursor);
        Ok(ReadBatch { has_more: records.len() as u32 == limit, records, cursor: next })
    }

    fn fetch(&mut self, entity: &str, ids: Vec<String>) -> Result<Vec<Record>, Error> {
        check_entity(entity)?;
        let mut found = Vec::with_capacity(ids.len());
        for id in ids {
            let doing = format!("fetching ticket {id}");
            let response = self.send(Request::new("GET", format!("{}/api/tickets/{id}", self.url)), &doing)?;
            match response.status {
                200 => found.push(record(response.json()?)),
                404 => {}
                _ => return Err(problem(&doing, &response)),
            }
        }
        Ok(found)
    }

    fn write(&mut self, entity: &str, changes: Vec<Change>) -> Result<Vec<Outcome>, Error> {
        check_entity(entity)?;
        let mut outcomes: Vec<Outcome> = Vec::with_capacity(changes.len());
        for change in &changes {
            match self.apply(change) {
                Ok(outcome) => outcomes.push(outcome),
                Err(error) if stops_the_batch(&error) => {
                    if outcomes.is_empty() {
                        // Nothing applied: the batch as a whole failed, and is retried.
                        return Err(error);
                    }
                    // What was applied stays applied; the rest waits for the next run.
                    let reason = error.problem().message.clone();
                    outcomes.push(Outcome::Rejected(error.into()));
                    while outcomes.len() < changes.len() {
                        outcomes.push(Outcome::Rejected(Error::transient("not-sent", format!("not sent: {reason}")).into()));
                    }
                    break;
                }
                Err(error) => outcomes.push(Outcome::Rejected(error.into())),
            }
        }
        Ok(outcomes)
    }

    fn probe(&mut self, needs: &[EntityNeed]) -> Result<Vec<Problem>, Error> {
        // An unreachable service or a refused token fails the probe as a whole.
        let me: Me = self.expect(Request::new("GET", format!("{}/api/me", self.url)), "asking the service who the token is")?;
        let mut problems = Vec::new();
        for need in needs {
            if need.entity != ENTITY {
                problems.push(check_entity(&need.entity).unwrap_err().into());
            } else if need.write && !me.can_write {
                problems.push(
                    Error::new("read-only-token", "the token in `token` may only read tickets, and a pipeline writes to them")
                        .with_hint("use a token with write access, or let the pipeline only read from this side")
                        .into(),
                );
            }
        }
        Ok(problems)
    }
}

export_connector!(TicketsConnector);

#[cfg(test)]
mod tests {
    use super::*;
    use synchost_plugin_sdk::testing::Harness;

    fn connector() -> TicketsConnector {
        Harness::set("desk", serde_json::json!({ "url": "http://tickets.test/", "token": "t0ken" }));
        TicketsConnector::new(&Context::current().unwrap()).unwrap()
    }

    fn ticket(id: u64, title: &str, updated_at: &str) -> serde_json::Value {
        serde_json::json!({ "id": id, "title": title, "status": "open", "assignee": null, "updated_at": updated_at, "deleted": false })
    }

    #[test]
    fn the_cursor_continues_after_the_last_change_read() {
        let mut desk = connector();
        Harness::serve_http(|_| {
            Response::with_json(200, &serde_json::json!({ "tickets": [ticket(4, "a", "2026-01-01T10:00:00.000001Z"), ticket(2, "b", "2026-01-01T10:00:00.000002Z")] }))
        });
        let batch = desk.read(ENTITY, None, 2).unwrap();
        assert_eq!(batch.records.len(), 2);
        assert!(batch.has_more);
        assert_eq!(batch.cursor.as_deref(), Some("2026-01-01T10:00:00.000002Z|2"));
        desk.read(ENTITY, batch.cursor, 2).unwrap();
        let sent = Harness::take_requests();
        assert_eq!(sent[1].url, "http://tickets.test/api/tickets?since=2026-01-01T10%3A00%3A00.000002Z&after=2&limit=2");
        assert!(sent[1].headers.contains(&("authorization".into(), "Bearer t0ken".into())));
    }

    #[test]
    fn a_ticket_changed_since_the_host_read_it_is_a_conflict() {
        let mut desk = connector();
        Harness::serve_http(|_| Response::with_json(412, &serde_json::json!({ "error": "changed", "current": ticket(7, "theirs", "T2") })));
        let change = Change {
            origin: "left:1".into(),
            target_id: Some("7".into()),
            expected_version: Some("T1".into()),
            kind: ChangeKind::Upsert,
            fields: vec![Field::new("title", "ours")],
            repeated: false,
            on_behalf_of: None,
        };
        let outcomes = desk.write(ENTITY, vec![change]).unwrap();
        let Outcome::Conflict(current) = &outcomes[0] else { panic!("{outcomes:?}") };
        assert_eq!(Harness::take_requests()[0].headers.iter().find(|(n, _)| n == "if-match").map(|(_, v)| v.as_str()), Some("T1"));
        assert_eq!(current.text("title"), Some("theirs"));
    }

    #[test]
    fn statuses_become_problems_that_name_the_fix_and_never_the_token() {
        let answer = |status: u16| problem("reading", &Response::with_json(status, &serde_json::json!({ "error": "no" })));
        let refused = answer(401);
        assert_eq!(refused.problem().code, "unauthorized");
        assert!(refused.problem().message.contains("`token`") && !refused.problem().retryable);
        assert!(answer(503).problem().retryable);
        assert!(!answer(422).problem().retryable);
        assert_eq!(answer(422).problem().message, "reading: the service refused it: no");
    }

    #[test]
    fn when_the_service_stops_answering_part_way_what_was_applied_stays_and_the_rest_waits() {
        let mut desk = connector();
        let mut calls = 0;
        Harness::serve_http(move |_| {
            calls += 1;
            match calls {
                1 => Response::with_json(201, &ticket(10, "first", "T1")),
                _ => Response::with_json(503, &serde_json::json!({ "error": "maintenance" })),
            }
        });
        let create = |title: &str| Change {
            origin: format!("left:{title}"),
            target_id: None,
            expected_version: None,
            kind: ChangeKind::Upsert,
            fields: vec![Field::new("title", title)],
            repeated: false,
            on_behalf_of: None,
        };
        let outcomes = desk.write(ENTITY, vec![create("first"), create("second"), create("third")]).unwrap();
        assert!(matches!(&outcomes[0], Outcome::Applied(applied) if applied.id == "10"));
        assert!(matches!(&outcomes[1], Outcome::Rejected(p) if p.code == "unavailable" && p.retryable));
        assert!(matches!(&outcomes[2], Outcome::Rejected(p) if p.code == "not-sent" && p.retryable));
        assert_eq!(Harness::take_requests().len(), 2, "nothing is sent after the service stopped answering");
    }
}
