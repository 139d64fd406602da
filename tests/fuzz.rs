//! Property tests over the parsers that take outside input: connection options, RESP replies and
//! call batches. None may panic, and each must round-trip what its encoder writes. The files in
//! fuzz/corpus/ are inputs that once looked dangerous; they are replayed on every run.

use ferrisession::command::Command;
use ferrisession::engine::resp;
use ferrisession::{batch, config};
use proptest::prelude::*;

fn corpus(kind: &str) -> Vec<(String, Vec<u8>)> {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("fuzz/corpus")
        .join(kind);
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("corpus {dir:?}: {e}"))
        .map(|e| e.unwrap().path())
        .collect();
    files.sort();
    assert!(!files.is_empty(), "corpus {kind} is empty");
    files
        .into_iter()
        .map(|p| (p.display().to_string(), std::fs::read(&p).unwrap()))
        .collect()
}

#[test]
fn config_corpus_gives_errors_not_panics() {
    for (name, bytes) in corpus("config") {
        let text = String::from_utf8(bytes).unwrap();
        if let Err(e) = config::parse(&text) {
            assert_eq!(
                e.kind,
                ferrisession::error::ErrorKind::BadArgument,
                "{name}"
            );
        }
    }
}

#[test]
fn resp_corpus_gives_errors_not_panics() {
    for (name, bytes) in corpus("resp") {
        let mut pos = 0;
        // Every file is broken or incomplete: decoding stops with an error or asks for more.
        while let Ok(Some((_, used))) = resp::decode(&bytes[pos..]) {
            pos += used;
            assert!(pos <= bytes.len(), "{name}");
        }
        assert!(
            pos < bytes.len(),
            "{name} decoded completely but is meant to be malformed"
        );
    }
}

#[test]
fn batch_corpus_gives_errors_not_panics() {
    for (name, bytes) in corpus("batch") {
        let v: serde_json::Value = serde_json::from_slice(&bytes).unwrap();
        let nums: Vec<f64> = v["nums"]
            .as_array()
            .unwrap()
            .iter()
            .map(|n| n.as_f64().unwrap())
            .collect();
        let text = v["text"].as_str().unwrap();
        match batch::decode(&nums, text) {
            Ok(calls) => assert!(
                calls.iter().all(|(_, r)| r.is_err()),
                "{name} should not decode to a valid call"
            ),
            Err(e) => assert_eq!(
                e.kind,
                ferrisession::error::ErrorKind::BadArgument,
                "{name}"
            ),
        }
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 2000, ..ProptestConfig::default() })]

    #[test]
    fn config_never_panics(text in ".{0,200}") {
        let _ = config::parse(&text);
    }

    #[test]
    fn config_urls_never_panic(scheme in "(redis|rediss|memory|unix|http|)", rest in "[ -~]{0,60}") {
        let json = serde_json::json!({ "url": format!("{scheme}://{rest}") }).to_string();
        let _ = config::parse(&json);
    }

    #[test]
    fn config_fields_never_panic(
        host in proptest::option::of("[ -~]{0,20}"),
        port in proptest::option::of(any::<i64>()),
        db in proptest::option::of(any::<i64>()),
        timeout in proptest::option::of(any::<f64>()),
        flavor in "(node-redis|ioredis|x)",
    ) {
        let json = serde_json::json!({
            "commandTimeout": timeout,
            "client": { "flavor": flavor, "options": { "host": host, "port": port, "db": db, "database": db, "socket": { "host": host, "port": port } } }
        }).to_string();
        let _ = config::parse(&json);
    }

    #[test]
    fn resp_decode_never_panics(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
        let _ = resp::decode(&bytes);
    }

    #[test]
    fn resp_commands_round_trip(args in proptest::collection::vec(proptest::collection::vec(any::<u8>(), 0..40), 1..8)) {
        let mut out = Vec::new();
        let refs: Vec<&[u8]> = args.iter().map(|a| a.as_slice()).collect();
        resp::encode(&mut out, &refs);
        let (frame, used) = resp::decode(&out).unwrap().unwrap();
        prop_assert_eq!(used, out.len());
        let resp::Frame::Array(Some(items)) = frame else { panic!("a command is an array") };
        let back: Vec<Vec<u8>> = items.into_iter().map(|f| match f {
            resp::Frame::Bulk(Some(b)) => b.to_vec(),
            other => panic!("argument came back as {other:?}"),
        }).collect();
        prop_assert_eq!(back, args);
    }

    #[test]
    fn encoded_session_commands_decode(key in ".{0,30}", value in ".{0,200}", ttl in 1u64..1_000_000) {
        let mut out = Vec::new();
        resp::encode_command(&mut out, &Command::Set { key: key.clone(), value: value.clone(), expiry: ferrisession::command::Expiry::In(ttl) });
        let (frame, used) = resp::decode(&out).unwrap().unwrap();
        prop_assert_eq!(used, out.len());
        let resp::Frame::Array(Some(items)) = frame else { panic!("a command is an array") };
        prop_assert_eq!(items.len(), 5);
        prop_assert_eq!(&items[1], &resp::Frame::Bulk(Some(key.as_bytes())));
        prop_assert_eq!(&items[2], &resp::Frame::Bulk(Some(value.as_bytes())));
    }

    #[test]
    fn batch_decode_never_panics(nums in proptest::collection::vec(any::<f64>(), 0..40), text in ".{0,60}") {
        let _ = batch::decode(&nums, &text);
    }

    #[test]
    fn batch_round_trips(records in proptest::collection::vec((".{0,20}", proptest::option::of(".{0,40}"), proptest::collection::vec(".{0,10}", 0..3)), 1..10)) {
        let mut nums = Vec::new();
        let mut text = String::new();
        let units = |s: &str| s.encode_utf16().count() as f64;
        for (i, (key, value, list)) in records.iter().enumerate() {
            nums.extend([batch::op::GET as f64, i as f64, f64::NAN, units(key), value.as_deref().map_or(-1.0, units), list.len() as f64]);
            nums.extend(list.iter().map(|s| units(s)));
            text.push_str(key);
            if let Some(v) = value { text.push_str(v); }
            for s in list { text.push_str(s); }
        }
        let calls = batch::decode(&nums, &text).unwrap();
        prop_assert_eq!(calls.len(), records.len());
        for ((id, request), (key, _, _)) in calls.into_iter().zip(&records) {
            let request = request.unwrap();
            prop_assert_eq!(request, ferrisession::request::Request::Get { key: key.clone() });
            let _ = id;
        }
    }
}
