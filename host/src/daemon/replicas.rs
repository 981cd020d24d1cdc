//! Unattended exchange (D10): on its schedule, each replica with folders
//! imports what waits, wakes its pipelines when changes arrived, and sends
//! what is due (a data message or an acknowledgement). Every outcome and
//! every refusal goes to the replica's activity log and the event log.

use std::sync::Arc;

use tokio::sync::watch;

use super::control::Control;
use super::Serving;
use crate::replicas::message::MessageKind;
use crate::replicas::{folder, link, Imported, Replica};

pub(super) async fn exchange_loop(serving: watch::Receiver<Arc<Serving>>, control: Arc<Control>, name: String, mut shutdown: watch::Receiver<bool>) {
    loop {
        let engine = serving.borrow().engine.clone();
        let Some(schedule) = engine.config.config.replicas.iter().find(|(n, _)| n.as_str() == name).and_then(|(_, r)| r.schedule.clone()) else {
            return;
        };
        exchange_once(&engine, &control, &name).await;
        drop(engine);
        tokio::select! {
            _ = tokio::time::sleep(schedule.next_delay()) => {}
            _ = shutdown.changed() => return,
        }
    }
}

async fn exchange_once(engine: &crate::engine::Engine, control: &Control, name: &str) {
    let event = |level: &str, message: &str, fix: Option<&str>| {
        let _ = engine.state.event(level, None, None, &format!("replica `{name}`: {message}"), fix);
    };
    let mut replica = match Replica::open(&engine.config, name) {
        Ok(replica) => replica,
        Err(error) => return event("error", &error.message, Some(&error.fix)),
    };
    let remote = link::remote(&replica).is_some();
    if remote {
        let outcome = cross(link::remote(&replica)).await;
        if let (true, Err(error)) = (link::note(&replica, &outcome), &outcome) {
            event("error", &error.message, Some(&error.fix));
        }
    }
    let (done, refused) = replica.import_waiting();
    let mut arrived = false;
    for (file, imported) in &done {
        arrived |= matches!(imported, Imported::Data { applied, .. } if *applied > 0);
        event("info", &format!("imported {}: {imported:?}", file.display()), None);
    }
    if let Some(error) = refused {
        event("error", &error.message, Some(&error.fix));
    }
    if arrived {
        for (pipeline, config) in &engine.config.config.pipelines {
            if config.left.endpoint.get_ref().as_str() == name || config.right.endpoint.get_ref().as_str() == name {
                control.wake(pipeline.as_str());
            }
        }
    }
    let made = match replica.due() {
        Ok(Some(MessageKind::Data)) => replica.export(false),
        Ok(Some(MessageKind::Ack)) => replica.acknowledge(),
        Ok(None) => return,
        Err(error) => Err(error),
    };
    match made {
        Ok(exported) => match replica.folders.as_ref().map(|(upload, _)| folder::deliver(upload, &exported)) {
            Some(Ok(path)) => {
                event("info", &format!("message {} written to {}", exported.number, path.display()), None);
                if remote {
                    let outcome = cross(link::remote(&replica)).await;
                    if let (true, Err(error)) = (link::note(&replica, &outcome), &outcome) {
                        event("error", &error.message, Some(&error.fix));
                    }
                }
            }
            Some(Err(error)) => event("error", &format!("message {} could not be written: {error}", exported.number), Some("check that the upload folder exists and is writable")),
            None => {}
        },
        Err(error) => event("error", &error.message, Some(&error.fix)),
    }
}

/// A round over the remote transport, once its target is known (no borrow of the replica's store is held meanwhile).
async fn cross(remote: Option<Result<link::Remote, link::LinkError>>) -> Result<link::Moved, link::LinkError> {
    match remote {
        Some(remote) => link::round(remote?).await,
        None => Ok(link::Moved::default()),
    }
}
