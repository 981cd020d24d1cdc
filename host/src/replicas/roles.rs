//! Who may send what (D4-D8): pure rules over the replica's kind, this
//! host's side and its role now.

use super::{ReplicaKind, ReplicaSide};

/// Whether this host sends data changes now or waits for the other's.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Role {
    Sender,
    Receiver,
}

impl Role {
    pub fn as_str(self) -> &'static str {
        match self {
            Role::Sender => "sender",
            Role::Receiver => "receiver",
        }
    }

    pub fn parse(text: &str) -> Option<Role> {
        match text {
            "sender" => Some(Role::Sender),
            "receiver" => Some(Role::Receiver),
            _ => None,
        }
    }
}

/// The role a side starts with: the parent sends first, except in a
/// check-out replica, whose child sends.
pub fn initial(kind: ReplicaKind, side: ReplicaSide) -> Role {
    match (kind, side) {
        (ReplicaKind::CheckOut, ReplicaSide::Child) | (ReplicaKind::TwoWay | ReplicaKind::OneWay, ReplicaSide::Parent) => Role::Sender,
        _ => Role::Receiver,
    }
}

/// A refusal: what is not allowed, and what to do instead.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    pub message: String,
    pub fix: String,
}

fn refuse(message: impl Into<String>, fix: impl Into<String>) -> Result<(), Refusal> {
    Err(Refusal { message: message.into(), fix: fix.into() })
}

/// May this host export data changes (with `swap` or not)?
pub fn may_send(kind: ReplicaKind, side: ReplicaSide, role: Role, swap: bool) -> Result<(), Refusal> {
    if swap && kind != ReplicaKind::TwoWay {
        return refuse(format!("a {} replica does not swap roles", kind.as_str()), "only two-way replicas swap roles");
    }
    match (kind, side, role) {
        (ReplicaKind::TwoWay, _, Role::Sender) | (ReplicaKind::OneWay, ReplicaSide::Parent, _) | (ReplicaKind::CheckOut, ReplicaSide::Child, _) => Ok(()),
        (ReplicaKind::TwoWay, _, Role::Receiver) => refuse(
            "this host is the receiver: the other host sends data changes until it swaps roles",
            "export an acknowledgement (`synchost replicas ack NAME`); to send, ask the other host to export with `--swap`; if its swap message was lost, it resends it (`synchost replicas resend NAME`)",
        ),
        (ReplicaKind::OneWay, ReplicaSide::Child, _) => refuse("in a one-way replica only the parent sends data changes", "export an acknowledgement instead (`synchost replicas ack NAME`)"),
        (ReplicaKind::CheckOut, ReplicaSide::Parent, _) => refuse("in a check-out replica only the child sends data changes", "import the child's messages instead"),
    }
}

/// May this host import the other's data changes?
pub fn may_receive(kind: ReplicaKind, side: ReplicaSide, role: Role) -> Result<(), Refusal> {
    match (kind, side, role) {
        (ReplicaKind::TwoWay, _, Role::Receiver) | (ReplicaKind::OneWay, ReplicaSide::Child, _) | (ReplicaKind::CheckOut, ReplicaSide::Parent, _) => Ok(()),
        (ReplicaKind::TwoWay, _, Role::Sender) => refuse(
            "this host is the sender, and the message holds data changes of the other host, which is a sender too",
            "both hosts became senders: the other host's swap was meant for a message of this host that it did not get; export this host's changes with `--swap` or ask the other host to resend",
        ),
        (ReplicaKind::OneWay, ReplicaSide::Parent, _) => refuse("in a one-way replica the parent receives no data changes", "check that the two hosts name opposite sides"),
        (ReplicaKind::CheckOut, ReplicaSide::Child, _) => refuse("in a check-out replica the child receives no data changes", "check that the two hosts name opposite sides"),
    }
}

/// Whether the kind uses acknowledgements (a check-out replica does not:
/// what it sends is let go once exported).
pub fn acknowledged(kind: ReplicaKind) -> bool {
    kind != ReplicaKind::CheckOut
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_parent_sends_first_except_in_a_check_out() {
        assert_eq!(initial(ReplicaKind::TwoWay, ReplicaSide::Parent), Role::Sender);
        assert_eq!(initial(ReplicaKind::TwoWay, ReplicaSide::Child), Role::Receiver);
        assert_eq!(initial(ReplicaKind::OneWay, ReplicaSide::Parent), Role::Sender);
        assert_eq!(initial(ReplicaKind::CheckOut, ReplicaSide::Child), Role::Sender);
        assert_eq!(initial(ReplicaKind::CheckOut, ReplicaSide::Parent), Role::Receiver);
    }

    #[test]
    fn each_kind_lets_only_its_sender_send_and_only_two_way_swap() {
        assert!(may_send(ReplicaKind::TwoWay, ReplicaSide::Child, Role::Sender, true).is_ok());
        assert!(may_send(ReplicaKind::TwoWay, ReplicaSide::Parent, Role::Receiver, false).unwrap_err().fix.contains("replicas ack"));
        assert!(may_send(ReplicaKind::OneWay, ReplicaSide::Parent, Role::Receiver, false).is_ok(), "a one-way parent always sends");
        assert!(may_send(ReplicaKind::OneWay, ReplicaSide::Parent, Role::Sender, true).is_err(), "one-way: no swap");
        assert!(may_send(ReplicaKind::OneWay, ReplicaSide::Child, Role::Sender, false).is_err());
        assert!(may_send(ReplicaKind::CheckOut, ReplicaSide::Child, Role::Receiver, false).is_ok());
        assert!(may_send(ReplicaKind::CheckOut, ReplicaSide::Parent, Role::Sender, false).is_err());
        assert!(may_receive(ReplicaKind::TwoWay, ReplicaSide::Parent, Role::Receiver).is_ok());
        assert!(may_receive(ReplicaKind::TwoWay, ReplicaSide::Parent, Role::Sender).is_err());
        assert!(may_receive(ReplicaKind::OneWay, ReplicaSide::Child, Role::Sender).is_ok());
        assert!(may_receive(ReplicaKind::CheckOut, ReplicaSide::Parent, Role::Receiver).is_ok());
        assert!(!acknowledged(ReplicaKind::CheckOut) && acknowledged(ReplicaKind::OneWay));
    }
}
