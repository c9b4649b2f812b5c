//! Notification bodies of every source (S3, SQS, SNS, EventBridge, Ceph
//! RGW, SeaweedFS, MinIO), and the key decodings they need.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(messages) = pkgsum::event::decode_str(text) {
        for message in &messages {
            for target in &message.targets {
                let _ = pkgsum::keys::is_plain_key(&target.key);
            }
        }
    }
    let _ = pkgsum::event::form_decode(text);
});
