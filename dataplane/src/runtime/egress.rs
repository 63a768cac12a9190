//! Egress: the outputs `Shard::forward` writes, held until a flush, and sent with one `sendmmsg`
//! run per egress socket, each message two iovecs (the rewritten header, the original payload
//! where it was received or stored).

use std::time::Instant;

use shardcast_core::drop_reason::{Counters, DropReason};
use shardcast_core::shard::{Output, OutputSink, PayloadRef, Shard};

use super::hop::{HopPacket, HOP_MTU};
use super::state::{CoreState, Sockets};
use crate::io::{RecvBatch, SendBatch, SendResult};

/// Outputs one receive batch may produce before they are flushed early.
pub(super) const OUTPUT_CAPACITY: usize = 8192;
/// Room `receive_and_forward` keeps free in the output buffer before forwarding a datagram
/// (more than one datagram's fan-out).
pub(super) const OUTPUT_HEADROOM: usize = 1024;

/// The outputs waiting to be sent and the send batch that carries them.
pub(super) struct Egress {
    pub(super) outputs: OutputBuffer,
    send: SendBatch,
}

/// Outputs of the datagrams forwarded since the last flush; refuses to grow (a full buffer is
/// flushed by the caller).
pub(super) struct OutputBuffer {
    items: Box<heapless::Vec<Output, OUTPUT_CAPACITY>>,
    /// Scratch for `Egress::send`: output indexes grouped by egress socket.
    order: Box<heapless::Vec<u32, OUTPUT_CAPACITY>>,
}

impl OutputSink for OutputBuffer {
    #[inline]
    fn push(&mut self, output: Output) -> bool {
        self.items.push(output).is_ok()
    }
}

impl OutputBuffer {
    #[inline]
    pub(super) fn len(&self) -> usize {
        self.items.len()
    }

    pub(super) fn is_empty(&self) -> bool {
        self.items.is_empty()
    }
}

/// Where the payload an output references lives.
pub(super) trait Datagrams {
    fn datagram(&self, index: u32) -> &[u8];
}

impl Datagrams for RecvBatch {
    #[inline]
    fn datagram(&self, index: u32) -> &[u8] {
        self.get(index as usize).0
    }
}

impl Datagrams for HopPacket {
    #[inline]
    fn datagram(&self, _index: u32) -> &[u8] {
        &self.data[..usize::from(self.len).min(HOP_MTU)]
    }
}

impl Egress {
    pub(super) fn new() -> Egress {
        Egress {
            outputs: OutputBuffer { items: Box::default(), order: Box::default() },
            send: SendBatch::new(1024),
        }
    }

    /// Sends every buffered output, one `sendmmsg` run per egress socket, in output order per
    /// socket (so each destination sees packets in forwarding order), and counts the result in
    /// `shard`'s counters.
    pub(super) fn send(&mut self, shard: &mut Shard, recv: &impl Datagrams, sockets: &Sockets) {
        let OutputBuffer { items, order } = &mut self.outputs;
        // Group by egress socket, keeping output order within each socket: sort the indexes by
        // (socket, index) — in place, no allocation, n log n however many sockets.
        order.clear();
        for i in 0..items.len() {
            let _ = order.push(i as u32);
        }
        order.sort_unstable_by_key(|&i| (items[i as usize].socket, i));
        let mut k = 0usize;
        while k < order.len() {
            let socket = items[order[k] as usize].socket;
            let fd = sockets.fd(socket);
            // Counted locally: the stored payloads borrow the shard while the batch is built.
            let mut counts = Counters::default();
            let store: &Shard = shard;
            let mut scope = self.send.scope();
            while k < order.len() && items[order[k] as usize].socket == socket {
                let o = &items[order[k] as usize];
                k += 1;
                let Some(fd) = fd else {
                    counts.drop(DropReason::SendError);
                    continue;
                };
                let payload: &[u8] = match o.payload {
                    PayloadRef::None => &[],
                    PayloadRef::Datagram { index, offset } => {
                        recv.datagram(index).get(usize::from(offset)..).unwrap_or(&[])
                    }
                    PayloadRef::Stored { router, producer, seq } => {
                        let p = store.stored_payload(router, producer, seq);
                        if p.is_empty() {
                            // Overwritten in the store since the NACK was answered: never send
                            // a header without its payload.
                            counts.drop(DropReason::RetransmissionEvicted);
                            continue;
                        }
                        p
                    }
                };
                if !scope.push(o.dest, o.header(), payload) {
                    count_send(&mut counts, scope.flush(fd));
                    if !scope.push(o.dest, o.header(), payload) {
                        // Only a header over 64 bytes can be refused by an empty batch.
                        counts.drop(DropReason::SendError);
                    }
                }
            }
            if let Some(fd) = fd {
                if !scope.is_empty() {
                    count_send(&mut counts, scope.flush(fd));
                }
            }
            drop(scope);
            shard.counters_mut().add(&counts);
        }
        items.clear();
    }
}

#[inline]
fn count_send(counters: &mut Counters, r: SendResult) {
    counters.packets_out += r.sent as u64;
    counters.bytes_out += r.sent_bytes as u64;
    counters.drops[DropReason::SendError as usize] += r.failed as u64;
    counters.drops[DropReason::SendWouldBlock as usize] += r.would_block as u64;
}

impl CoreState {
    /// Sends the outputs waiting since the last flush and frees the receive slots they point
    /// into. Runs before any command, carried datagram or wait, and when the slots run out.
    pub(super) fn flush_outputs(&mut self) {
        if !self.egress.outputs.is_empty() {
            let started = Instant::now();
            self.egress.send(&mut self.shard, &self.ingress.recv, &self.sockets);
            self.report.busy_ns += started.elapsed().as_nanos() as u64;
        }
        self.ingress.recv.clear();
    }
}
