//! X.509 summary of a peer's certificate (DER bytes from the network).
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(summary) = netkit::wire::x509::summarize(data) {
        // Every field printed is one line of text.
        for field in [
            &summary.subject,
            &summary.issuer,
            &summary.not_before,
            &summary.not_after,
        ] {
            assert!(!field.contains(['\n', '\r']), "{field:?}");
        }
    }
});
