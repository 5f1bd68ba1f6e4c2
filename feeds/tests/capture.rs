//! Capture reader/writer: shared captures, crafted bad inputs, round trips.

mod common;

use common::shared_dir;
use std::collections::HashMap;
use std::fs;
use std::io::{BufRead, BufReader, Cursor, Read, Write};
use std::path::{Path, PathBuf};

use feeds::capture::{BadRecord, CaptureReader, CaptureStats, CaptureWriter, Rotation};
use flate2::write::GzEncoder;
use flate2::Compression;
use proptest::prelude::*;

fn temp_dir(name: &str) -> PathBuf {
    let dir =
        std::env::temp_dir().join(format!("wiresignal-capture-{}-{name}", std::process::id()));
    let _ = fs::remove_dir_all(&dir);
    fs::create_dir_all(&dir).unwrap();
    dir
}

fn gzip(data: &[u8]) -> Vec<u8> {
    let mut e = GzEncoder::new(Vec::new(), Compression::default());
    e.write_all(data).unwrap();
    e.finish().unwrap()
}

fn captures_under(dir: &Path, out: &mut Vec<PathBuf>) {
    for e in fs::read_dir(dir).unwrap() {
        let p = e.unwrap().path();
        if p.is_dir() {
            captures_under(&p, out);
        } else if p.to_string_lossy().ends_with(".txt.gz") {
            out.push(p);
        }
    }
}

/// MANIFEST.md table: file → (venue, symbols, messages).
fn manifest(data: &Path) -> HashMap<String, (String, Vec<String>, u64)> {
    let text = fs::read_to_string(data.join("MANIFEST.md")).unwrap();
    let mut out = HashMap::new();
    for row in text.lines().filter(|l| l.starts_with("| `")) {
        let cols: Vec<&str> = row.split('|').map(str::trim).collect();
        let file = cols[1].trim_matches('`').to_owned();
        let symbols = cols[4].split(", ").map(str::to_owned).collect();
        out.insert(
            file,
            (cols[2].to_owned(), symbols, cols[5].parse().unwrap()),
        );
    }
    out
}

/// Independent count: decompressed lines that are neither `#`, blank, nor bad.
fn independent_count(path: &Path) -> (u64, u64) {
    let gz = flate2::read::MultiGzDecoder::new(fs::File::open(path).unwrap());
    let (mut records, mut comments) = (0, 0);
    for line in BufReader::new(gz).lines() {
        let line = line.unwrap();
        if line.starts_with('#') {
            comments += 1;
        } else if !line.trim().is_empty() {
            let (ts, _) = line.split_once(' ').unwrap();
            ts.parse::<i64>().unwrap();
            records += 1;
        }
    }
    (records, comments)
}

#[test]
fn reads_every_shared_capture() {
    let Some(shared) = shared_dir() else { return };
    let data = shared.join("data");
    let manifest = manifest(&data);
    let mut files = Vec::new();
    captures_under(&data, &mut files);
    files.sort();
    assert!(
        files.len() >= 8,
        "expected the shared captures, found {files:?}"
    );
    for path in &files {
        let rel = path
            .strip_prefix(&data)
            .unwrap()
            .to_string_lossy()
            .replace('\\', "/");
        let (records, header_lines) = independent_count(path);
        let mut r = CaptureReader::open(path).unwrap();
        assert!(r.is_gzip());
        let mut n = 0u64;
        let mut last_recv = i64::MIN;
        while let Some(rec) = r.next_record() {
            let rec = rec.unwrap_or_else(|e| panic!("{rel}: {e}"));
            assert!(
                rec.recv_ns >= last_recv,
                "{rel}: receive time went back at line {}",
                rec.line
            );
            last_recv = rec.recv_ns;
            assert_eq!(rec.line, header_lines + n + 1, "{rel}");
            let json = (rec.frame.starts_with(b"{") && rec.frame.ends_with(b"}"))
                || (rec.frame.starts_with(b"[") && rec.frame.ends_with(b"]"));
            assert!(json, "{rel}: line {}", rec.line);
            n += 1;
        }
        assert!(r.next_record().is_none());
        let want = CaptureStats {
            records,
            ..CaptureStats::default()
        };
        assert_eq!(r.stats(), &want, "{rel}");
        let h = r.header();
        assert!(
            h.get("source").is_some() && h.get("licence").is_some(),
            "{rel}"
        );
        assert!(
            h.get("note").is_some_and(|n| n.contains(' ')),
            "{rel}: note keeps its spaces"
        );
        if let Some((venue, symbols, messages)) = manifest.get(&rel) {
            assert_eq!(records, *messages, "{rel}: manifest message count");
            assert_eq!(h.venue.as_deref(), Some(venue.as_str()), "{rel}");
            assert_eq!(&h.symbols, symbols, "{rel}");
        } else {
            panic!("{rel} not in MANIFEST.md");
        }
        eprintln!("{rel}: {records} records");
    }
}

#[test]
fn binance_spot_header() {
    let Some(shared) = shared_dir() else { return };
    let r = CaptureReader::open(&shared.join("data/binance-spot/btcusdt_20240808.txt.gz")).unwrap();
    let h = r.header();
    assert_eq!(h.venue.as_deref(), Some("binance-spot"));
    assert_eq!(h.symbols, ["BTCUSDT"]);
    assert_eq!(h.get("licence"), Some("MIT"));
    assert_eq!(
        h.get("rest_snapshot"),
        Some("https://api.binance.com/api/v3/depth?symbol=BTCUSDT&limit=1000")
    );
    let keys: Vec<&str> = h.fields.iter().map(|(k, _)| k.as_str()).collect();
    assert_eq!(
        keys,
        [
            "venue",
            "source",
            "licence",
            "symbols",
            "rest_snapshot",
            "note"
        ]
    );
}

const CRAFTED: &[u8] = b"# venue=test symbols=A,B\n\
# note=hello world\n\
100 {\"a\":1}\n\
\n\
   \n\
# mid-file comment\n\
nope {\"b\":2}\n\
200 \xff\xfe\n\
300 {\"c\":3}\r\n\
12345\n\
-5 x y z\n\
99999999999999999999 {}\n\
400 \n\
500 {\"last\":true}";

/// (line, recv_ns, frame) or (line, error kind) of one item.
type Item = Result<(u64, i64, Vec<u8>), (u64, BadRecord)>;

/// Every item of a reader, and its final stats.
fn collect(mut r: CaptureReader) -> (Vec<Item>, CaptureStats) {
    let mut out = Vec::new();
    while let Some(item) = r.next_record() {
        out.push(match item {
            Ok(rec) => Ok((rec.line, rec.recv_ns, rec.frame.to_vec())),
            Err(e) => Err((e.line, e.kind)),
        });
    }
    (out, r.stats().clone())
}

#[test]
fn crafted_plain_and_gzip_agree() {
    let plain = collect(CaptureReader::from_reader(Cursor::new(CRAFTED.to_vec())).unwrap());
    let r = CaptureReader::from_reader(Cursor::new(gzip(CRAFTED))).unwrap();
    assert!(r.is_gzip());
    assert_eq!(r.header().symbols, ["A", "B"]);
    assert_eq!(r.header().get("note"), Some("hello world"));
    let gz = collect(r);
    assert_eq!(plain, gz);
    let (items, stats) = plain;
    let want: Vec<Item> = vec![
        Ok((3, 100, b"{\"a\":1}".to_vec())),
        Err((7, BadRecord::NoTimestamp)),
        Err((8, BadRecord::NotUtf8)),
        Ok((9, 300, b"{\"c\":3}".to_vec())),
        Err((10, BadRecord::NoTimestamp)),
        Ok((11, -5, b"x y z".to_vec())),
        Err((12, BadRecord::NoTimestamp)),
        Ok((13, 400, Vec::new())),
        Ok((14, 500, b"{\"last\":true}".to_vec())),
    ];
    assert_eq!(items, want);
    assert_eq!(
        stats,
        CaptureStats {
            records: 5,
            bad_records: 4,
            blank_lines: 2,
            comment_lines: 1,
            truncated: false
        }
    );
}

#[test]
fn error_display() {
    let mut r = CaptureReader::from_reader(Cursor::new(b"x\n1 \xff\n".to_vec())).unwrap();
    assert_eq!(
        r.next_record().unwrap().unwrap_err().to_string(),
        "line 1: no timestamp"
    );
    assert_eq!(
        r.next_record().unwrap().unwrap_err().to_string(),
        "line 2: frame is not valid UTF-8"
    );
    assert!(r.next_record().is_none());
}

#[test]
fn empty_and_header_only_inputs() {
    for input in [
        &b""[..],
        b"#",
        b"# venue=x\n",
        b"\n\n",
        b"\x1f",
        b"\x1f\x8b",
    ] {
        let mut r = CaptureReader::from_reader(Cursor::new(input.to_vec())).unwrap();
        let mut n = 0;
        while let Some(item) = r.next_record() {
            assert!(item.is_err(), "{input:?}");
            n += 1;
        }
        assert!(n <= 1);
        assert_eq!(r.stats().records, 0);
    }
    let r = CaptureReader::from_reader(Cursor::new(b"# venue=x\n".to_vec())).unwrap();
    assert_eq!(r.header().venue.as_deref(), Some("x"));
    // A gzip of nothing at all is a valid, empty capture.
    let mut r = CaptureReader::from_reader(Cursor::new(gzip(b""))).unwrap();
    assert!(r.next_record().is_none());
    assert!(!r.stats().truncated);
}

fn many_lines(n: u64) -> Vec<u8> {
    let mut text = b"# venue=test\n".to_vec();
    for i in 0..n {
        // Varied content so the deflate stream is not trivially short.
        writeln!(
            text,
            "{} {{\"i\":{i},\"h\":\"{:x}\"}}",
            1_000_000 + i,
            i.wrapping_mul(0x9e37_79b9_7f4a_7c15)
        )
        .unwrap();
    }
    text
}

#[test]
fn truncated_gzip_file() {
    let dir = temp_dir("truncated");
    let full = gzip(&many_lines(20_000));
    // Mid-stream cut, and a cut of only the 8-byte trailer (crc + size).
    for (name, cut) in [("mid", full.len() / 2), ("trailer", full.len() - 8)] {
        let path = dir.join(format!("{name}.txt.gz"));
        fs::write(&path, &full[..cut]).unwrap();
        let mut r = CaptureReader::open(&path).unwrap();
        let mut ok = 0u64;
        let mut last_line = 0;
        let err = loop {
            match r.next_record() {
                Some(Ok(rec)) => {
                    assert_eq!(rec.recv_ns, 1_000_000 + ok as i64);
                    last_line = rec.line;
                    ok += 1;
                }
                Some(Err(e)) => break e,
                None => panic!("{name}: truncation not reported"),
            }
        };
        assert!(matches!(err.kind, BadRecord::Truncated(_)), "{name}: {err}");
        assert!(err.line > last_line);
        assert!(r.next_record().is_none(), "{name}: truncation is terminal");
        assert!(r.next_record().is_none());
        let s = r.stats();
        assert!(s.truncated);
        assert_eq!((s.records, s.bad_records), (ok, 1));
        if name == "mid" {
            assert!(ok > 0 && ok < 20_000, "{name}: {ok}");
        } else {
            assert!(ok >= 19_999, "{name}: {ok}");
        }
    }
    fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn corrupt_gzip_and_read_error() {
    // Corrupt deflate data after a valid gzip header.
    let mut bad = gzip(&many_lines(100));
    for b in &mut bad[12..40] {
        *b ^= 0x5a;
    }
    let (items, stats) = collect(CaptureReader::from_reader(Cursor::new(bad)).unwrap());
    assert!(matches!(
        items.last(),
        Some(Err((_, BadRecord::Truncated(_))))
    ));
    assert!(stats.truncated);

    // An io error from the source after some good lines.
    struct Failing(Cursor<Vec<u8>>);
    impl Read for Failing {
        fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
            match self.0.read(buf)? {
                0 => Err(std::io::Error::other("link down")),
                n => Ok(n),
            }
        }
    }
    let r =
        CaptureReader::from_reader(Failing(Cursor::new(b"1 a\n2 b\n3 partial".to_vec()))).unwrap();
    let (items, stats) = collect(r);
    assert_eq!(items.len(), 3);
    assert_eq!(items[1], Ok((2, 2, b"b".to_vec())));
    assert_eq!(items[2], Err((3, BadRecord::Truncated("link down".into()))));
    assert!(stats.truncated);
}

#[test]
fn concatenated_gzip_members() {
    let mut data = gzip(b"# venue=x\n1 a\n");
    data.extend(gzip(b"2 b\n# later comment\n3 c\n"));
    let (items, stats) = collect(CaptureReader::from_reader(Cursor::new(data)).unwrap());
    assert_eq!(items.len(), 3);
    assert_eq!(items[2], Ok((5, 3, b"c".to_vec())));
    assert_eq!(stats.comment_lines, 1);
}

#[test]
fn reader_is_send() {
    fn is_send<T: Send>() {}
    is_send::<CaptureReader>();
    is_send::<CaptureWriter>();
}

#[test]
fn frame_parses_in_place() {
    let mut r =
        CaptureReader::from_reader(Cursor::new(b"7 {\"s\":\"BTCUSDT\",\"u\":5}\n".to_vec()))
            .unwrap();
    let rec = r.next_record().unwrap().unwrap();
    let v = simd_json::to_borrowed_value(rec.frame).unwrap();
    use simd_json::prelude::*;
    assert_eq!(v.get("s").and_then(|s| s.as_str()), Some("BTCUSDT"));
}

#[test]
fn writer_round_trip_with_rotation() {
    let dir = temp_dir("rotation");
    let header = [
        ("venue", "binance-spot"),
        ("symbols", "BTCUSDT"),
        ("note", "round trip test"),
    ];
    // Start 2024-08-08T23:59:58Z; one record per 100 ms for 5 s.
    let t0: i64 = 1_723_161_598_000_000_000;
    let recs: Vec<(i64, String)> = (0..50)
        .map(|i| {
            (
                t0 + i * 100_000_000,
                format!("{{\"i\":{i},\"pad\":\"{}\"}}", "x".repeat(i as usize)),
            )
        })
        .collect();

    // By age: a new file every full second of receive time.
    let rot = Rotation {
        max_bytes: None,
        max_age_ns: Some(1_000_000_000),
    };
    let mut w = CaptureWriter::create(&dir.join("age"), "btcusdt", &header, rot).unwrap();
    assert!(w.files().is_empty());
    for (t, f) in &recs {
        w.write(*t, f.as_bytes()).unwrap();
    }
    w.flush().unwrap();
    assert_eq!(w.files().len(), 5);
    let files = w.finish().unwrap();
    let names: Vec<String> = files
        .iter()
        .map(|p| p.file_name().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(
        names,
        [
            "btcusdt-20240808T235958-0000.txt.gz",
            "btcusdt-20240808T235959-0001.txt.gz",
            "btcusdt-20240809T000000-0002.txt.gz",
            "btcusdt-20240809T000001-0003.txt.gz",
            "btcusdt-20240809T000002-0004.txt.gz",
        ]
    );
    assert_eq!(read_all(&files, &header), recs);

    // By size: every file stays under the limit unless it holds one record.
    let max = 600u64;
    let rot = Rotation {
        max_bytes: Some(max),
        max_age_ns: None,
    };
    let mut w = CaptureWriter::create(&dir.join("size"), "btcusdt", &header, rot).unwrap();
    for (t, f) in &recs {
        w.write(*t, f.as_bytes()).unwrap();
    }
    let files = w.finish().unwrap();
    assert!(files.len() > 3, "{files:?}");
    for f in &files {
        let mut text = Vec::new();
        flate2::read::GzDecoder::new(fs::File::open(f).unwrap())
            .read_to_end(&mut text)
            .unwrap();
        let records = text
            .split(|&c| c == b'\n')
            .filter(|l| !l.is_empty() && l[0] != b'#')
            .count();
        assert!(
            text.len() as u64 <= max || records == 1,
            "{}: {} bytes",
            f.display(),
            text.len()
        );
    }
    assert_eq!(read_all(&files, &header), recs);

    // A reused prefix in the same second does not overwrite earlier files.
    let mut w =
        CaptureWriter::create(&dir.join("size"), "btcusdt", &header, Rotation::NEVER).unwrap();
    w.write(t0, b"{}").unwrap();
    let again = w.finish().unwrap();
    assert_eq!(again.len(), 1);
    assert!(!files.contains(&again[0]));

    fs::remove_dir_all(&dir).unwrap();
}

fn read_all(files: &[PathBuf], header: &[(&str, &str)]) -> Vec<(i64, String)> {
    let mut out = Vec::new();
    for f in files {
        let mut r = CaptureReader::open(f).unwrap();
        let want: Vec<(String, String)> = header
            .iter()
            .map(|(k, v)| ((*k).into(), (*v).into()))
            .collect();
        assert_eq!(r.header().fields, want);
        while let Some(rec) = r.next_record() {
            let rec = rec.unwrap();
            out.push((rec.recv_ns, rec.frame_str().to_owned()));
        }
        assert_eq!(r.stats().bad_records, 0);
    }
    out
}

#[test]
fn writer_rejects_bad_input() {
    let dir = temp_dir("reject");
    assert!(CaptureWriter::create(&dir, "", &[], Rotation::NEVER).is_err());
    assert!(CaptureWriter::create(&dir, "a/b", &[], Rotation::NEVER).is_err());
    assert!(CaptureWriter::create(&dir, "p", &[("a b", "v")], Rotation::NEVER).is_err());
    assert!(CaptureWriter::create(&dir, "p", &[("k", "v\nw")], Rotation::NEVER).is_err());
    let mut w = CaptureWriter::create(&dir, "p", &[], Rotation::NEVER).unwrap();
    assert!(w.write(1, b"a\nb").is_err());
    assert!(w.write(1, b"ab\r").is_err());
    assert!(w.write(1, b"\xff").is_err());
    assert!(w.files().is_empty(), "rejected frames create no file");
    w.write(-1, b"").unwrap();
    let files = w.finish().unwrap();
    let (items, _) = collect(CaptureReader::open(&files[0]).unwrap());
    assert_eq!(items, vec![Ok((1, -1, Vec::new()))]);
    fs::remove_dir_all(&dir).unwrap();
}

fn drain(mut r: CaptureReader) {
    let mut guard = 0usize;
    while let Some(item) = r.next_record() {
        if let Ok(rec) = item {
            assert!(std::str::from_utf8(rec.frame).is_ok());
            assert!(!rec.frame.ends_with(b"\n"));
        }
        guard += 1;
        assert!(guard < 1_000_000);
    }
    assert!(r.next_record().is_none());
    let s = r.stats();
    assert!(s.records + s.bad_records <= guard as u64);
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
        drain(CaptureReader::from_reader(Cursor::new(bytes.clone())).unwrap());
        let mut gz = vec![0x1f, 0x8b];
        gz.extend_from_slice(&bytes);
        drain(CaptureReader::from_reader(Cursor::new(gz)).unwrap());
    }

    #[test]
    fn line_soup_never_panics(lines in proptest::collection::vec(
        prop_oneof![
            Just("#".to_string()), Just(String::new()), Just("\r".to_string()),
            "[0-9]{1,20} [ -~]{0,20}", "-?[0-9 ]{0,5}[a-z{}]{0,5}", "[^\n]{0,10}",
        ], 0..40)) {
        let text = lines.join("\n");
        drain(CaptureReader::from_reader(Cursor::new(text.clone().into_bytes())).unwrap());
        drain(CaptureReader::from_reader(Cursor::new(gzip(text.as_bytes()))).unwrap());
    }
}
