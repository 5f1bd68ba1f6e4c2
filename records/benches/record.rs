//! Encode and decode cost of one record (issue: < 20 ns per row).

use criterion::{black_box, criterion_group, criterion_main, Criterion};
use records::Record;

fn bench(c: &mut Criterion) {
    let r = Record {
        venue: 0,
        instrument: 7,
        signal: 3,
        flags: 0,
        ts_ns: 1_700_000_000_000_000_000,
        recv_ns: 1_700_000_000_000_500_000,
        seq: 42,
        value: 97_000.5,
    };
    let mut out = [0u8; records::SIZE];
    c.bench_function("record_encode_into", |b| {
        b.iter(|| black_box(&r).encode_into(black_box(&mut out)));
    });
    let bytes = r.encode();
    c.bench_function("record_decode", |b| {
        b.iter(|| Record::decode(black_box(&bytes)));
    });
}

criterion_group!(benches, bench);
criterion_main!(benches);
