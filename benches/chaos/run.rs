//! The run: start the node and the driver, the loops, the drain, the end.

use super::*;

pub(crate) async fn run(options: Options) -> BenchResult<()> {
    if !rustix::process::geteuid().is_root() {
        return Err("run as root: the driver mounts a tmpfs per volume".into());
    }
    let node = Node::create(options.seed)?;
    let driver = Arc::new(Driver::new(&node));
    let _cleanup = Cleanup {
        node: node.clone(),
        driver: Arc::clone(&driver),
        keep: options.keep,
    };

    let api = TestApiServer::start().await;
    api.set_latency(API_LATENCY);
    let signer = Signer::start(&api);
    api.write_kubeconfig(&node.kubeconfig(), kube_test_server::DRIVER_TOKEN);
    driver.spawn()?;
    let client = connect_when_serving(&node.socket(), START_LIMIT).await?;

    let chaos = Arc::new(Chaos {
        node: node.clone(),
        driver: Arc::clone(&driver),
        api,
        signer,
        client: Mutex::new(client),
        published: Mutex::new(BTreeMap::new()),
        outages: Mutex::new(Vec::new()),
        frozen: AtomicBool::new(false),
        publishes_in_flight: AtomicUsize::new(0),
        unpublishes_in_flight: AtomicUsize::new(0),
        renewals_due: AtomicUsize::new(0),
        give_up: AtomicBool::new(false),
        tally: Mutex::new(Tally::default()),
        lifecycle: tokio::sync::Mutex::new(()),
        rebooting: AtomicBool::new(false),
    });

    let checker_stop = Arc::new(AtomicBool::new(false));
    let checker = {
        let chaos = Arc::clone(&chaos);
        let stop = Arc::clone(&checker_stop);
        std::thread::spawn(move || Checker::new(chaos).run(&stop))
    };

    // The node fills up with pods first, then the chaos starts.
    let mut kubelet = JoinSet::new();
    let mut names = stream(options.seed, 1);
    for index in 0..options.volumes {
        let volume = new_volume(&node, &mut names, index)?;
        kubelet.spawn(kubelet_publish(Arc::clone(&chaos), volume));
    }
    while let Some(done) = kubelet.join_next().await {
        done?;
    }

    let chaos_started = Instant::now();
    let chaos_started_utc = time::OffsetDateTime::now_utc();
    let deadline = chaos_started + options.chaos_length();
    let outage_plan = plan_outages(&mut stream(options.seed, 2), options.chaos_length());
    let outages = tokio::spawn(outage_loop(Arc::clone(&chaos), chaos_started, outage_plan));
    let kills = tokio::spawn(kill_loop(
        Arc::clone(&chaos),
        stream(options.seed, 3),
        deadline,
    ));
    let faults = tokio::spawn(api_fault_loop(
        Arc::clone(&chaos),
        stream(options.seed, 4),
        deadline,
    ));
    let reboot = tokio::spawn(reboot_once(
        Arc::clone(&chaos),
        stream(options.seed, 7),
        chaos_started,
        options.chaos_length(),
    ));
    let disk_full = tokio::spawn(disk_full_loop(
        Arc::clone(&chaos),
        stream(options.seed, 6),
        deadline,
    ));
    churn_loop(
        &chaos,
        &mut kubelet,
        stream(options.seed, 5),
        names,
        options.volumes,
        deadline,
    )
    .await?;
    outages.await?;
    kills.await??;
    faults.await?;
    disk_full.await?;
    reboot.await??;
    let chaos_took = chaos_started.elapsed();

    // The API is up and the driver running: what is still pending gets a last chance.
    chaos.api.set_frozen(false);
    chaos.api.clear_faults();
    drain(&chaos, &mut kubelet).await?;

    checker_stop.store(true, Ordering::Relaxed);
    let checked = checker.join().map_err(|_| "the checker panicked")?;

    let teardown = teardown(&chaos).await;
    let leftovers = leftovers(&node);
    let requests_left = chaos
        .api
        .list_objects("cert-manager.io/v1", "certificaterequests")
        .len();
    driver.kill();
    let log = scan_log(&node.log());

    Report {
        options,
        node: &node,
        chaos_took,
        tally: &chaos.tally(),
        outages: &chaos.outages(),
        chaos_started,
        chaos_started_utc,
        checked: &checked,
        teardown: &teardown,
        leftovers: &leftovers,
        requests_left,
        log: &log,
        driver_starts: driver.starts.load(Ordering::Relaxed),
    }
    .print();
    Ok(())
}

pub(crate) fn new_volume(
    node: &Node,
    rng: &mut fastrand::Rng,
    index: usize,
) -> BenchResult<Volume> {
    let pod = format!("pod-{index:04}");
    Ok(Volume {
        id: format!("csi-{index:04}-{:08x}", rng.u32(..)),
        uid: format!(
            "{:08x}-0000-4000-8000-{:012x}",
            rng.u32(..),
            rng.u64(..1 << 48)
        ),
        target: node.target(&pod)?,
        pod,
    })
}
