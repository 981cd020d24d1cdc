//! `tickets-service`: the ticket tracker of the HTTP connector walk-through.

use clap::Parser;
use tickets_service::{Service, TicketInput, Tokens};

/// A small ticket tracker with a JSON API, kept in memory.
#[derive(Debug, Parser)]
struct Args {
    /// Address to listen on.
    #[arg(long, default_value = "127.0.0.1:8765")]
    listen: String,
    /// A bearer token that may read and change tickets (from the environment, so it stays out of `ps`).
    #[arg(long, env = "TICKETS_TOKEN", hide_env_values = true)]
    token: String,
    /// A bearer token that may only read.
    #[arg(long, env = "TICKETS_READ_TOKEN", hide_env_values = true)]
    read_token: Option<String>,
    /// Tickets to start with.
    #[arg(long, default_value_t = 3)]
    seed: u32,
}

#[tokio::main(flavor = "current_thread")]
async fn main() -> std::io::Result<()> {
    let args = Args::parse();
    let service = Service::new(Tokens { read_write: vec![args.token], read_only: args.read_token.into_iter().collect() });
    let people = ["ada", "grace", "edsger"];
    for n in 0..args.seed {
        let input = TicketInput {
            title: Some(format!("Ticket {}", n + 1)),
            assignee: Some(Some(people[n as usize % people.len()].to_owned())),
            ..TicketInput::default()
        };
        service.create(input).expect("seed tickets are valid");
    }
    let listener = tokio::net::TcpListener::bind(&args.listen).await?;
    println!("serving tickets on http://{}/api/tickets", listener.local_addr()?);
    service.serve(listener).await
}
