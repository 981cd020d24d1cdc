//! A small ticket tracker with a JSON API, kept in memory: the system the
//! HTTP connector of `synchost package new --kind connector --http` talks to,
//! in `docs/writing-plugins.md` and in the tests.
//!
//! It behaves as the services integrators meet do: bearer tokens (one may
//! only read), a change feed ordered by change time and id, `If-Match` on
//! every change (`412` with the current ticket when it moved), `422` for a
//! ticket it will not take, tombstones for deleted tickets, and `origin`,
//! a caller's reference it stores and finds tickets by.
//!
//! | request | answer |
//! |---|---|
//! | `GET /api/me` | `{"user", "can_write"}` for the token |
//! | `GET /api/tickets?since=T&after=ID&limit=N` | `{"tickets": [...]}` changed after `(T, ID)`, in that order |
//! | `GET /api/tickets?origin=O` | the tickets with that origin |
//! | `GET /api/tickets/ID` | the ticket (deleted ones too), or `404` |
//! | `POST /api/tickets` | `201` and the new ticket |
//! | `PATCH /api/tickets/ID` + `If-Match: UPDATED_AT` | `200` and the ticket; `412` `{"error", "current"}` |
//! | `DELETE /api/tickets/ID` + `If-Match` | `200` and the tombstone |

use std::collections::BTreeMap;
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::extract::{Path, Query, State};
use axum::http::{HeaderMap, StatusCode};
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde::{Deserialize, Serialize};
use serde_json::json;

/// The statuses a ticket may have.
pub const STATUSES: [&str; 3] = ["open", "in-progress", "done"];

/// One ticket.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Ticket {
    pub id: u64,
    pub title: String,
    pub status: String,
    pub assignee: Option<String>,
    pub origin: Option<String>,
    /// RFC 3339 with microseconds, UTC; strictly increasing over all changes.
    pub updated_at: String,
    pub deleted: bool,
}

/// Who may do what.
#[derive(Debug, Clone, Default)]
pub struct Tokens {
    /// Bearer tokens that may read and change tickets.
    pub read_write: Vec<String>,
    /// Bearer tokens that may only read.
    pub read_only: Vec<String>,
}

#[derive(Debug, Default)]
struct Store {
    tickets: BTreeMap<u64, Ticket>,
    last_stamp: Option<chrono::DateTime<chrono::Utc>>,
}

impl Store {
    /// A live ticket, if it is still at the `expected` version (`If-Match`).
    fn at_version(&self, id: u64, expected: Option<&str>) -> Result<Ticket, (StatusCode, String)> {
        let current = self.tickets.get(&id).filter(|t| !t.deleted).cloned().ok_or((StatusCode::NOT_FOUND, format!("there is no ticket {id}")))?;
        if expected.is_some_and(|expected| expected != current.updated_at) {
            return Err((StatusCode::PRECONDITION_FAILED, serde_json::to_string(&current).expect("a ticket serializes")));
        }
        Ok(current)
    }

    /// A change time after every earlier one, so a feed ordered by
    /// (updated_at, id) shows every change exactly once.
    fn stamp(&mut self) -> String {
        let mut now = chrono::Utc::now();
        if let Some(last) = self.last_stamp
            && now <= last
        {
            now = last + chrono::Duration::microseconds(1);
        }
        self.last_stamp = Some(now);
        now.to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
    }
}

/// The service: its tickets and tokens, shared by its handlers and by
/// tests that play a person editing tickets.
#[derive(Debug, Clone)]
pub struct Service {
    store: Arc<Mutex<Store>>,
    tokens: Arc<Tokens>,
}

/// A ticket's fields as a caller sends them.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct TicketInput {
    pub title: Option<String>,
    pub status: Option<String>,
    /// `null` clears it; absent keeps it.
    #[serde(default, deserialize_with = "present")]
    pub assignee: Option<Option<String>>,
    pub origin: Option<String>,
}

fn present<'de, D: serde::Deserializer<'de>>(deserializer: D) -> Result<Option<Option<String>>, D::Error> {
    Option::<String>::deserialize(deserializer).map(Some)
}

fn error(status: StatusCode, message: impl Into<String>) -> Response {
    (status, Json(json!({ "error": message.into() }))).into_response()
}

impl Service {
    pub fn new(tokens: Tokens) -> Self {
        Service { store: Arc::default(), tokens: Arc::new(tokens) }
    }

    /// Every ticket, deleted ones included, by id.
    pub fn tickets(&self) -> Vec<Ticket> {
        self.store.lock().unwrap().tickets.values().cloned().collect()
    }

    /// Creates a ticket as a person using the tracker would.
    pub fn create(&self, input: TicketInput) -> Result<Ticket, String> {
        let mut store = self.store.lock().unwrap();
        let title = input.title.unwrap_or_default();
        check(&title, input.status.as_deref())?;
        let id = store.tickets.keys().next_back().map_or(1, |last| last + 1);
        let ticket = Ticket {
            id,
            title,
            status: input.status.unwrap_or_else(|| "open".into()),
            assignee: input.assignee.flatten(),
            origin: input.origin,
            updated_at: store.stamp(),
            deleted: false,
        };
        store.tickets.insert(id, ticket.clone());
        Ok(ticket)
    }

    /// Changes a ticket as a person would (no version check).
    pub fn edit(&self, id: u64, input: TicketInput) -> Result<Ticket, String> {
        self.change(id, None, input).map_err(|(_, message)| message)
    }

    fn change(&self, id: u64, expected: Option<&str>, input: TicketInput) -> Result<Ticket, (StatusCode, String)> {
        let mut store = self.store.lock().unwrap();
        let mut ticket = store.at_version(id, expected)?;
        if let Some(title) = input.title {
            ticket.title = title;
        }
        if let Some(status) = input.status {
            ticket.status = status;
        }
        if let Some(assignee) = input.assignee {
            ticket.assignee = assignee;
        }
        check(&ticket.title, Some(&ticket.status)).map_err(|message| (StatusCode::UNPROCESSABLE_ENTITY, message))?;
        ticket.updated_at = store.stamp();
        store.tickets.insert(id, ticket.clone());
        Ok(ticket)
    }

    fn delete(&self, id: u64, expected: Option<&str>) -> Result<Ticket, (StatusCode, String)> {
        let mut store = self.store.lock().unwrap();
        let mut ticket = store.at_version(id, expected)?;
        ticket.deleted = true;
        ticket.updated_at = store.stamp();
        store.tickets.insert(id, ticket.clone());
        Ok(ticket)
    }

    /// The API as a router.
    pub fn router(&self) -> Router {
        Router::new()
            .route("/api/me", get(me))
            .route("/api/tickets", get(list).post(create))
            .route("/api/tickets/{id}", get(show).patch(update).delete(remove))
            .with_state(self.clone())
    }

    /// Serves the API on `listen` until the process ends.
    pub async fn serve(self, listener: tokio::net::TcpListener) -> std::io::Result<()> {
        axum::serve(listener, self.router()).await
    }

    /// Serves the API on a loopback port of its own, on a thread of its own
    /// (for tests that are not async). Returns the address.
    pub fn spawn(&self) -> SocketAddr {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").expect("a loopback port is free");
        listener.set_nonblocking(true).expect("the listener can be non-blocking");
        let address = listener.local_addr().expect("a bound listener has an address");
        let service = self.clone();
        std::thread::spawn(move || {
            let runtime = tokio::runtime::Builder::new_current_thread().enable_all().build().expect("a runtime starts");
            runtime.block_on(async move {
                let listener = tokio::net::TcpListener::from_std(listener).expect("the listener joins the runtime");
                service.serve(listener).await
            })
        });
        address
    }

    /// Whether the request's bearer token may read (`Ok(false)`) or write (`Ok(true)`).
    fn authorize(&self, headers: &HeaderMap) -> Result<bool, Response> {
        let token = headers
            .get("authorization")
            .and_then(|v| v.to_str().ok())
            .and_then(|v| v.strip_prefix("Bearer "))
            .ok_or_else(|| error(StatusCode::UNAUTHORIZED, "send a bearer token: Authorization: Bearer TOKEN"))?;
        if self.tokens.read_write.iter().any(|t| t == token) {
            Ok(true)
        } else if self.tokens.read_only.iter().any(|t| t == token) {
            Ok(false)
        } else {
            Err(error(StatusCode::UNAUTHORIZED, "the token is not valid"))
        }
    }

    fn authorize_write(&self, headers: &HeaderMap) -> Result<(), Response> {
        match self.authorize(headers)? {
            true => Ok(()),
            false => Err(error(StatusCode::FORBIDDEN, "this token may only read tickets")),
        }
    }
}

fn check(title: &str, status: Option<&str>) -> Result<(), String> {
    if title.trim().is_empty() {
        return Err("a ticket needs a title".into());
    }
    if let Some(status) = status.filter(|s| !STATUSES.contains(s)) {
        return Err(format!("`{status}` is not a status; use one of: {}", STATUSES.join(", ")));
    }
    Ok(())
}

fn refused((status, body): (StatusCode, String)) -> Response {
    if status == StatusCode::PRECONDITION_FAILED {
        let current: serde_json::Value = serde_json::from_str(&body).unwrap_or_default();
        return (status, Json(json!({ "error": "the ticket changed since the version in If-Match", "current": current }))).into_response();
    }
    error(status, body)
}

fn if_match(headers: &HeaderMap) -> Option<&str> {
    headers.get("if-match").and_then(|v| v.to_str().ok()).map(|v| v.trim_matches('"'))
}

async fn me(State(service): State<Service>, headers: HeaderMap) -> Response {
    match service.authorize(&headers) {
        Ok(can_write) => Json(json!({ "user": "service account", "can_write": can_write })).into_response(),
        Err(response) => response,
    }
}

#[derive(Debug, Deserialize)]
struct Feed {
    since: Option<String>,
    after: Option<u64>,
    limit: Option<usize>,
    origin: Option<String>,
}

async fn list(State(service): State<Service>, headers: HeaderMap, Query(feed): Query<Feed>) -> Response {
    if let Err(response) = service.authorize(&headers) {
        return response;
    }
    let store = service.store.lock().unwrap();
    let mut tickets: Vec<&Ticket> = match &feed.origin {
        Some(origin) => store.tickets.values().filter(|t| t.origin.as_ref() == Some(origin)).collect(),
        None => {
            let since = feed.since.clone().unwrap_or_default();
            let after = feed.after.unwrap_or(0);
            store.tickets.values().filter(|t| (t.updated_at.as_str(), t.id) > (since.as_str(), after)).collect()
        }
    };
    tickets.sort_by(|a, b| (&a.updated_at, a.id).cmp(&(&b.updated_at, b.id)));
    tickets.truncate(feed.limit.unwrap_or(100).min(1000));
    Json(json!({ "tickets": tickets })).into_response()
}

async fn show(State(service): State<Service>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    if let Err(response) = service.authorize(&headers) {
        return response;
    }
    match service.store.lock().unwrap().tickets.get(&id) {
        Some(ticket) => Json(ticket).into_response(),
        None => error(StatusCode::NOT_FOUND, format!("there is no ticket {id}")),
    }
}

async fn create(State(service): State<Service>, headers: HeaderMap, Json(input): Json<TicketInput>) -> Response {
    if let Err(response) = service.authorize_write(&headers) {
        return response;
    }
    match service.create(input) {
        Ok(ticket) => (StatusCode::CREATED, Json(ticket)).into_response(),
        Err(message) => error(StatusCode::UNPROCESSABLE_ENTITY, message),
    }
}

async fn update(State(service): State<Service>, headers: HeaderMap, Path(id): Path<u64>, Json(input): Json<TicketInput>) -> Response {
    if let Err(response) = service.authorize_write(&headers) {
        return response;
    }
    match service.change(id, if_match(&headers), input) {
        Ok(ticket) => Json(ticket).into_response(),
        Err(refusal) => refused(refusal),
    }
}

async fn remove(State(service): State<Service>, headers: HeaderMap, Path(id): Path<u64>) -> Response {
    if let Err(response) = service.authorize_write(&headers) {
        return response;
    }
    match service.delete(id, if_match(&headers)) {
        Ok(ticket) => Json(ticket).into_response(),
        Err(refusal) => refused(refusal),
    }
}
