//! One identity for tasks that existed before tracing.

use super::*;

/// `host` (a subreaper started before tracing) runs `record`, whose command makes an orphan
/// that `host` adopts and reaps. `host` and `record` existed before tracing began, so the
/// tracer first knows them from `/proc` (start times in 10 ms ticks): every proc object about
/// one task must still carry one start time, and that start must be the one `/proc` shows.
#[test]
fn tasks_from_before_tracing_keep_one_identity() {
    require_root();
    let _serial = serial();
    let facts_path = TempPath::new("identity.facts.jsonl");
    let out = TempPath::new("identity.jsonl");
    let wl = workload();
    let output = Command::new(&wl)
        .arg("host")
        .arg(&facts_path.0)
        .arg("--")
        .arg(reaper_trace())
        .args(["record", "-q", "-o"])
        .arg(&out.0)
        .arg("--")
        .arg(&wl)
        .arg("identity")
        .arg(&facts_path.0)
        .output()
        .expect("the host runs");
    assert!(
        output.status.success(),
        "broken case identity: {}: {}",
        output.status,
        String::from_utf8_lossy(&output.stderr)
    );
    let trace = Trace::read(&out.0);
    keep("identity", &facts_path.0, &trace);
    let mut facts = Facts::read(&facts_path.0);
    let rec = u(&facts.one("recorder")["pid"]);
    facts.add_record_wait(rec as u32);
    let host = facts.one("host");
    let recorder = facts.one("recorder");
    let h = u(&host["pid"]);
    let rec = u(&recorder["pid"]);
    let orphan = facts.one("orphan adopted");
    let o = u(&orphan["pid"]);
    assert_eq!(orphan["ppid"], h, "broken case: the host adopts the orphan");
    assert!(
        facts
            .waits_labelled("host wait")
            .any(|w| w["ret"] == o && w["reaped"] == true),
        "broken case: the host reaped the orphan"
    );

    let mut c = Checks::new("identity", &trace);
    c.focus([h, rec, o]);
    // Per tid, the start times of all proc objects, clustered (same task: within 10 ms).
    let mut starts: BTreeMap<u64, BTreeMap<u64, Vec<String>>> = BTreeMap::new();
    for e in &trace.events {
        for (field, p) in procs(e) {
            let (Some(tid), Some(start)) = (p["tid"].as_u64(), p["start"].as_u64()) else {
                continue;
            };
            starts
                .entry(tid)
                .or_default()
                .entry(start)
                .or_default()
                .push(format!("{}.{field}", e["type"]));
        }
    }
    for (tid, values) in &starts {
        let mut cluster: Vec<(u64, &Vec<String>)> = Vec::new();
        let flush = |c: &mut Checks, cluster: &mut Vec<(u64, &Vec<String>)>| {
            if cluster.len() > 1 {
                c.failures.push(format!(
                    "task {tid} appears with {} start times within 10 ms: {}",
                    cluster.len(),
                    cluster
                        .iter()
                        .map(|(s, w)| format!("{s} in {w:?}"))
                        .collect::<Vec<_>>()
                        .join("; ")
                ));
            }
            cluster.clear();
        };
        for (&start, where_) in values {
            if cluster
                .first()
                .is_some_and(|(s0, _)| start - s0 >= NS_PER_TICK)
            {
                flush(&mut c, &mut cluster);
            }
            cluster.push((start, where_));
        }
        flush(&mut c, &mut cluster);
        if values.contains_key(&0) && values.len() > 1 {
            c.failures.push(format!(
                "task {tid} appears with start 0 in {:?} and with its start elsewhere",
                values[&0]
            ));
        }
    }
    // The pre-existing tasks' start times are the ones /proc shows.
    for (name, t) in [("host", host), ("record", recorder)] {
        let tid = u(&t["tid"]);
        let want = u(&t["start"]);
        let seen: Vec<u64> = starts
            .get(&tid)
            .map(|v| v.keys().copied().collect())
            .unwrap_or_default();
        c.check(!seen.is_empty(), || {
            format!("{name} {tid} does not appear in the recording")
        });
        c.check(seen.iter().all(|&s| start_tick(s) == want), || {
            format!("{name} {tid} appears with start times {seen:?}, /proc shows tick {want}")
        });
    }
    // The orphan's adoption and reap by the pre-existing host.
    if let Some(r) = c.exactly_one(
        events(&trace, "reparent", "orphan", o),
        &format!("adoption of the orphan {o}"),
    ) {
        c.check(r["reaper"]["pid"] == h, || {
            format!("the host {h} adopts the orphan: {r}")
        });
    }
    if let Some(z) = c.exactly_one(
        events(&trace, "zombie", "task", o),
        &format!("zombie of the orphan {o}"),
    ) {
        c.check(z["parent"]["pid"] == h, || {
            format!("the orphan's zombie waits for the host {h}: {z}")
        });
    }
    if let Some(r) = c.exactly_one(
        events(&trace, "reap", "task", o),
        &format!("reap of the orphan {o}"),
    ) {
        c.check(r["reaper"]["pid"] == h && r["how"] == "wait4", || {
            format!("the host {h} reaped the orphan with wait4: {r}")
        });
    }
    assert_ids_match_proc(&mut c, &trace, &facts);
    assert_possible(&mut c, &trace, &facts);
    consistency(&mut c, &trace);
    c.finish();
    assert_consistent(&trace);
}
