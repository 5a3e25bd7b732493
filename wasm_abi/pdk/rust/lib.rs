//! Guest kit for event gateway plugins written in Rust (ABI `eventgateway_abi_v1`).
//!
//! A plugin implements [`Plugin`] and names its type in [`plugin!`], which writes every export the
//! host expects (`eventgateway_abi_v1`, `alloc`, `subscriptions`, `init`, `react`). The kit has no
//! dependencies (its own msgpack codec), so it builds with a bare `rustc` for
//! `wasm32-unknown-unknown`, without crates.io:
//!
//! ```text
//! rustc --edition 2021 --target wasm32-unknown-unknown --crate-type rlib --crate-name eventgateway_pdk -O lib.rs
//! rustc --edition 2021 --target wasm32-unknown-unknown --crate-type cdylib -O -C panic=abort \
//!       --extern eventgateway_pdk=libeventgateway_pdk.rlib plugin.rs
//! ```
//!
//! Capabilities an operator grants (ABI.md section 7.1) have typed wrappers: [`kv`] (`kv::get`,
//! `kv::set`, `kv::delete`, `kv::incr`, `kv::cas`), [`http`] (`http::request`) and [`metrics`]
//! (`metrics::counter_add`, ...). Each returns `Result<_, CapError>`; [`CapError`] names the ABI's error
//! codes. A module imports only the capability functions its code calls (the linker drops the rest),
//! so a plugin needs a grant only for what it uses.

pub mod capability;
pub mod event;
pub mod http;
pub mod kv;
pub mod log;
pub mod metrics;
pub mod msgpack;
pub mod reaction;
pub mod value;

#[doc(hidden)]
pub mod glue;

pub use capability::CapError;
pub use event::{CloudEvent, Event};
pub use reaction::{Reaction, Subscription};
pub use value::Value;

/// What a plugin is. One value of the type lives in the instance from `init` on, so fields keep
/// state across events (until the host recreates the instance, e.g. after a fault).
pub trait Plugin: Sized {
    /// The system events to receive, and whether the gateway waits for the answer.
    fn subscriptions() -> Vec<Subscription>;

    /// Build the plugin from its config map (nil when the gateway has none). An `Err` fails the
    /// load with that message.
    fn init(config: &Value) -> Result<Self, String>;

    /// Answer one system event.
    fn react(&mut self, event: &Event) -> Reaction;
}

/// Export the ABI for a [`Plugin`] type: `eventgateway_pdk::plugin!(MyPlugin);` once per plugin.
#[macro_export]
macro_rules! plugin {
    ($plugin:ty) => {
        static mut __EVENTGATEWAY_PLUGIN: ::core::option::Option<$plugin> = ::core::option::Option::None;

        #[no_mangle]
        pub extern "C" fn eventgateway_abi_v1() {}

        #[no_mangle]
        pub extern "C" fn alloc(size: i32) -> i32 {
            $crate::glue::alloc(size)
        }

        #[no_mangle]
        pub extern "C" fn subscriptions() -> i64 {
            $crate::glue::subscriptions::<$plugin>()
        }

        #[no_mangle]
        pub extern "C" fn init(ptr: i32, len: i32) -> i64 {
            // Safety: Wasm instances are single-threaded and the host never re-enters a call.
            $crate::glue::init::<$plugin>(unsafe { &mut *::core::ptr::addr_of_mut!(__EVENTGATEWAY_PLUGIN) }, ptr, len)
        }

        #[no_mangle]
        pub extern "C" fn react(ptr: i32, len: i32) -> i64 {
            $crate::glue::react::<$plugin>(unsafe { &mut *::core::ptr::addr_of_mut!(__EVENTGATEWAY_PLUGIN) }, ptr, len)
        }
    };
}
