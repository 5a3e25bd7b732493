//! Test module for the kit's msgpack codec: `roundtrip(ptr, len)` decodes the bytes and answers
//! their re-encoding, which tests/pdk/test_rust_msgpack.py compares with the reference vectors.

#[no_mangle]
pub extern "C" fn alloc(size: i32) -> i32 {
    eventgateway_pdk::glue::alloc(size)
}

#[no_mangle]
pub extern "C" fn roundtrip(ptr: i32, len: i32) -> i64 {
    eventgateway_pdk::glue::roundtrip(ptr, len)
}
