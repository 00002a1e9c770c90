//! `nk head --resolve HOST:PORT:ADDR[,ADDR]` and `--connect-to HOST:PORT:HOST2:PORT2` specs.
#![no_main]
use libfuzzer_sys::fuzz_target;
use netkit::wire::http_route::{parse_connect_to, parse_resolve};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(pin) = parse_resolve(text) {
        assert!(pin.port > 0 && !pin.addrs.is_empty(), "{pin:?}");
        assert!(pin.matches(&pin.host.clone(), pin.port) || pin.host == "*");
        assert!(!pin.host.contains(['\r', '\n', ' ', '/', '@']), "{pin:?}");
    }
    if let Ok(detour) = parse_connect_to(text) {
        let (host, port) = detour
            .apply(detour.host.as_deref().unwrap_or("h"), detour.port.unwrap_or(80))
            .expect("an entry applies to what it names");
        assert!(port > 0 && !host.is_empty(), "{detour:?}");
        assert!(!host.contains(['\r', '\n', ' ', '/', '@']), "{detour:?}");
    }
});
