//! The agent link: messages between `allot agent` and the server.
//!
//! Transport: one WebSocket per node at `GET /v1/agent/connect` on the server's
//! HTTP port, authenticated with a `node` token (`Authorization: Bearer ...`). Every
//! frame is one JSON text message: `AgentMsg` up, `ServerMsg` down. The first
//! message up is `Register`; the server answers `Welcome` (with the replicas the
//! agent must kill: fencing) and then sends `Assign` for every replica it should run.
//!
//! Reports (`Started`, `Exited`) carry a per-node sequence number; the agent keeps
//! them until the server acknowledges them (`Ack`) and sends them again after a
//! reconnect, so they survive server restarts. The server handles a report twice
//! without harm.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

/// Version of this protocol; the server refuses other versions.
pub const AGENT_PROTOCOL: u32 = 1;

/// Path of the agent WebSocket.
pub const AGENT_CONNECT_PATH: &str = "/v1/agent/connect";

/// One GPU as the agent sees it.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[cfg_attr(feature = "openapi", derive(utoipa::ToSchema))]
pub struct GpuInfo {
    pub index: u32,
    pub uuid: String,
    pub model: String,
    pub memory_mib: u64,
    pub healthy: bool,
    /// Why it is unhealthy (ECC errors, lost from the bus, ...).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub reason: Option<String>,
}

/// A replica the agent runs (or ran and has not yet had its exit acknowledged).
#[derive(Clone, Debug, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct ReplicaKey {
    pub job: u64,
    /// The assignment epoch: changes every time the job is (re)started.
    pub epoch: i64,
    pub rank: u32,
}

/// First message on a connection: the node and what runs there.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Register {
    pub protocol: u32,
    /// The node's name as in the cluster config.
    pub node: String,
    pub hostname: String,
    /// Address other replicas reach this node at (MASTER_ADDR).
    pub addr: String,
    pub cpus: u32,
    pub memory_mib: u64,
    #[serde(default)]
    pub labels: BTreeMap<String, String>,
    /// Topology position (`site/block/leaf`) the agent was given, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub at: Option<String>,
    pub gpus: Vec<GpuInfo>,
    /// Replicas whose processes are alive.
    #[serde(default)]
    pub running: Vec<ReplicaKey>,
    pub agent_version: String,
    /// Whether the GPUs are emulated (`--emulate-gpus`).
    #[serde(default)]
    pub emulated: bool,
}

/// How a replica ended.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct ExitInfo {
    /// Exit code, when it exited by itself.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub code: Option<i32>,
    /// Signal that killed it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub signal: Option<i32>,
    pub runtime_ms: u64,
    /// `exited`, `killed` (asked to stop), `walltime`, `spawn_failed`, `lost` (the
    /// agent could not learn how it ended).
    pub reason: String,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub message: Option<String>,
}

impl ExitInfo {
    pub fn success(&self) -> bool {
        self.code == Some(0) && self.reason == "exited"
    }
}

/// Agent to server.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum AgentMsg {
    Register(Register),
    Heartbeat {
        at_ms: i64,
    },
    /// GPU health changed.
    Gpus {
        gpus: Vec<GpuInfo>,
    },
    Started {
        seq: u64,
        replica: ReplicaKey,
        pid: u32,
        at_ms: i64,
    },
    Exited {
        seq: u64,
        replica: ReplicaKey,
        exit: ExitInfo,
        at_ms: i64,
    },
    /// A piece of a log the server asked for (`stream`); `eof` ends it.
    Log {
        stream: u64,
        #[serde(default)]
        data: String,
        #[serde(default)]
        eof: bool,
        #[serde(default, skip_serializing_if = "Option::is_none")]
        error: Option<String>,
    },
}

/// One replica to run.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
pub struct Assignment {
    pub replica: ReplicaKey,
    pub tenant: String,
    pub command: Vec<String>,
    #[serde(default)]
    pub env: BTreeMap<String, String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub workdir: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub image: Option<String>,
    pub world_size: u32,
    pub local_rank: u32,
    pub node_rank: u32,
    pub master_addr: String,
    pub master_port: u16,
    /// GPU indices on this node (CUDA_VISIBLE_DEVICES).
    pub gpus: Vec<u32>,
    /// Walltime in seconds: the replica is stopped after it.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub walltime_s: Option<u64>,
    /// Grace period between SIGTERM and SIGKILL.
    #[serde(default = "default_grace")]
    pub grace_s: u64,
}

fn default_grace() -> u64 {
    10
}

/// Server to agent.
#[derive(Clone, Debug, PartialEq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ServerMsg {
    /// Answer to `Register`: heartbeat every `heartbeat_ms`; kill every replica of
    /// yours if the server was unreachable for `fence_after_ms` (it will have given
    /// your jobs to other nodes by then); `kill` lists replicas to kill now (they
    /// were reassigned while the agent was away).
    Welcome {
        heartbeat_ms: u64,
        fence_after_ms: u64,
        kill: Vec<ReplicaKey>,
    },
    Assign(Box<Assignment>),
    /// SIGTERM the replica's process group, SIGKILL after `grace_s`.
    Kill {
        replica: ReplicaKey,
        grace_s: u64,
        reason: String,
    },
    /// Answer to a heartbeat: the server is there.
    Pong {
        at_ms: i64,
    },
    /// Reports up to `seq` are handled and may be forgotten.
    Ack {
        seq: u64,
    },
    /// Send the log of a replica from `offset`; with `follow`, keep sending until it
    /// has exited.
    Log {
        stream: u64,
        job: u64,
        rank: u32,
        offset: u64,
        follow: bool,
    },
    LogCancel {
        stream: u64,
    },
    /// The server refuses this connection (unknown node, bad protocol).
    Refused {
        message: String,
    },
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn messages_are_tagged_and_round_trip() {
        let m = AgentMsg::Heartbeat { at_ms: 5 };
        assert_eq!(serde_json::to_string(&m).unwrap(), r#"{"type":"heartbeat","at_ms":5}"#);
        let k = ServerMsg::Kill { replica: ReplicaKey { job: 1, epoch: 2, rank: 0 }, grace_s: 3, reason: "cancelled".into() };
        let back: ServerMsg = serde_json::from_str(&serde_json::to_string(&k).unwrap()).unwrap();
        assert_eq!(back, k);
    }

    #[test]
    fn register_rejects_unknown_fields() {
        let e = serde_json::from_str::<AgentMsg>(r#"{"type":"register","protocol":1,"nod":"x"}"#).unwrap_err();
        assert!(e.to_string().contains("unknown field") || e.to_string().contains("missing field"), "{e}");
    }
}
