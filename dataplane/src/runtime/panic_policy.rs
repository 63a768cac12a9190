//! The data plane's panic policy: a panic on a core is a bug, and the process aborts.
//!
//! Nothing a peer or an API caller sends may panic a core (parsing is checked once, commands on
//! missing targets are harmless), so a panic means the core's state can no longer be trusted —
//! and neither can the routers, sockets and steering entries it shares with the other cores
//! through the handoff and the hop rings. Rather than keep forwarding around a silently dead
//! core (reported "stalled" forever), the hook installed by [`install`] logs the panic — a
//! `tracing` error and a line on stderr, both naming the core, the location and the message —
//! and calls `std::process::abort()`, so the supervisor (systemd `Restart=on-failure`) restarts
//! the daemon. It does not depend on the build profile's `panic` setting.
//!
//! Only the cores' threads abort: the hook knows them by a thread-local mark set when the core
//! starts ([`enter_core`]). A panic on any other thread goes to the hook that was installed
//! before (unwinding as usual), so tests and embedders keep their behaviour.

use std::cell::Cell;
use std::sync::Once;

thread_local! {
    /// The index of the core this thread runs, if it runs one.
    static CORE: Cell<Option<usize>> = const { Cell::new(None) };
}

/// Installs the panic hook (once per process; later calls do nothing).
pub(super) fn install() {
    static INSTALL: Once = Once::new();
    INSTALL.call_once(|| {
        let previous = std::panic::take_hook();
        std::panic::set_hook(Box::new(move |info| {
            let Some(core) = CORE.with(Cell::get) else {
                previous(info);
                return;
            };
            let message = info
                .payload()
                .downcast_ref::<&str>()
                .copied()
                .or_else(|| info.payload().downcast_ref::<String>().map(String::as_str))
                .unwrap_or("(no message)");
            let location = info.location().map_or_else(|| "unknown location".to_owned(), |l| l.to_string());
            let thread = std::thread::current();
            let thread = thread.name().unwrap_or("unnamed");
            tracing::error!(
                core,
                thread,
                %location,
                "core {core} panicked: {message}; aborting the process (a panic is a bug)"
            );
            // Also straight to stderr: the log may be filtered or not set up at all. The
            // backtrace is there when RUST_BACKTRACE asks for it.
            let backtrace = std::backtrace::Backtrace::capture();
            eprintln!(
                "shardcast: core {core} (thread {thread}) panicked at {location}: {message}; aborting \
                 (a panic is a bug: the supervisor restarts the daemon)"
            );
            if backtrace.status() == std::backtrace::BacktraceStatus::Captured {
                eprintln!("{backtrace}");
            }
            std::process::abort();
        }));
    });
}

/// Marks the calling thread as core `index`'s: a panic on it aborts the process.
pub(super) fn enter_core(index: usize) {
    CORE.with(|c| c.set(Some(index)));
}
