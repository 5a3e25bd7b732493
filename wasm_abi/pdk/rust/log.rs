//! The host's `eventgateway.log` import. The gateway tags each line with the plugin's name.

#[link(wasm_import_module = "eventgateway")]
extern "C" {
    #[link_name = "log"]
    fn host_log(level: i32, ptr: i32, len: i32);
}

#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Level {
    Debug = 0,
    Info = 1,
    Warn = 2,
    Error = 3,
}

/// Log one message at `level`.
pub fn log(level: Level, message: &str) {
    // Safety: the host only reads `len` bytes at `ptr` during the call.
    unsafe { host_log(level as i32, message.as_ptr() as i32, message.len() as i32) }
}

pub fn debug(message: &str) {
    log(Level::Debug, message)
}

pub fn info(message: &str) {
    log(Level::Info, message)
}

pub fn warn(message: &str) {
    log(Level::Warn, message)
}

pub fn error(message: &str) {
    log(Level::Error, message)
}
