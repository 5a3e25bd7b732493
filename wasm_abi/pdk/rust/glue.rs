//! The ABI plumbing behind `plugin!`: buffer ownership, packing, and turning bad input or a
//! panic into something the gateway can report.

use crate::event::Event;
use crate::msgpack;
use crate::reaction::{Reaction, Subscription};
use crate::value::Value;
use crate::Plugin;
use std::alloc::{alloc as raw_alloc, dealloc, Layout};

/// Bytes in front of every `alloc` block holding its size, so `react` can free a buffer the host
/// filled without trusting the length it was given.
const HEADER: usize = 8;

/// The last answer handed to the host; the ABI keeps it valid until the next call.
static mut OUTPUT: Vec<u8> = Vec::new();

static mut PANIC_HOOK_SET: bool = false;

pub fn alloc(size: i32) -> i32 {
    if size < 0 {
        return 0;
    }
    let layout = match Layout::from_size_align(size as usize + HEADER, HEADER) {
        Ok(layout) => layout,
        Err(_) => return 0,
    };
    // Safety: the layout is non-zero-sized; a null result is reported as 0.
    unsafe {
        let base = raw_alloc(layout);
        if base.is_null() {
            return 0;
        }
        (base as *mut usize).write(size as usize);
        base.add(HEADER) as i32
    }
}

/// Copy out and free a buffer the host filled; the plugin owns it from the call on.
fn take_input(ptr: i32, len: i32) -> Vec<u8> {
    if ptr == 0 {
        return Vec::new();
    }
    // Safety: `ptr` came from `alloc`, whose header records the block size.
    unsafe {
        let base = (ptr as usize as *mut u8).sub(HEADER);
        let size = (base as *const usize).read();
        let bytes = std::slice::from_raw_parts(ptr as usize as *const u8, (len.max(0) as usize).min(size)).to_vec();
        dealloc(base, Layout::from_size_align_unchecked(size + HEADER, HEADER));
        bytes
    }
}

/// Keep `bytes` alive until the next call and return them packed as `ptr << 32 | len`.
fn hand_over(bytes: Vec<u8>) -> i64 {
    // Safety: single-threaded instance; the previous answer is dropped only now, as the ABI allows.
    unsafe {
        OUTPUT = bytes;
        let output = &*std::ptr::addr_of!(OUTPUT);
        ((output.as_ptr() as u32 as u64) << 32 | output.len() as u32 as u64) as i64
    }
}

fn answer(reaction: Reaction) -> i64 {
    match reaction.encode() {
        Some(bytes) => hand_over(bytes),
        None => 0,
    }
}

/// Log a panic's message before the Wasm trap, so the gateway's log says what went wrong.
fn install_panic_hook() {
    unsafe {
        if PANIC_HOOK_SET {
            return;
        }
        PANIC_HOOK_SET = true;
    }
    std::panic::set_hook(Box::new(|info| crate::log::error(&format!("plugin panicked: {}", info))));
}

pub fn subscriptions<P: Plugin>() -> i64 {
    hand_over(Subscription::encode_list(&P::subscriptions()))
}

pub fn init<P: Plugin>(state: &mut Option<P>, ptr: i32, len: i32) -> i64 {
    install_panic_hook();
    let config = match msgpack::decode(&take_input(ptr, len)) {
        Ok(config) => config,
        Err(e) => return answer(Reaction::error(format!("init: config is not msgpack: {}", e))),
    };
    match P::init(&config) {
        Ok(plugin) => {
            *state = Some(plugin);
            0
        }
        Err(message) => answer(Reaction::error(message)),
    }
}

pub fn react<P: Plugin>(state: &mut Option<P>, ptr: i32, len: i32) -> i64 {
    install_panic_hook();
    let input = take_input(ptr, len);
    if state.is_none() {
        // The host skips `init` when the plugin has no config: start from an empty one.
        match P::init(&Value::Nil) {
            Ok(plugin) => *state = Some(plugin),
            Err(message) => return answer(Reaction::error(message)),
        }
    }
    let event = match msgpack::decode(&input) {
        Ok(raw) => Event::new(raw),
        Err(e) => return answer(Reaction::error(format!("react: event is not msgpack: {}", e))),
    };
    match state.as_mut() {
        Some(plugin) => answer(plugin.react(&event)),
        None => 0,
    }
}

/// For the kit's own tests: decode the input and re-encode it; bad input logs why and answers 0.
pub fn roundtrip(ptr: i32, len: i32) -> i64 {
    match msgpack::decode(&take_input(ptr, len)) {
        Ok(value) => hand_over(msgpack::encode(&value)),
        Err(e) => {
            crate::log::error(&e.to_string());
            0
        }
    }
}
