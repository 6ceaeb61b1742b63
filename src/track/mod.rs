//! rj-track's work, without clap: the [`Tracker`] that survives from tick to tick and the tick
//! itself, as the named steps of ARCHITECTURE.md §7. What a tick concludes is in [`judge`]
//! (pure), how it asks Slurm in [`query`], the lease in [`lease`], the moves in [`moves`].
pub mod judge;
pub mod lease;
pub mod moves;
pub mod query;
mod script;

use std::collections::{BTreeMap, HashMap, HashSet};
use std::io::Write;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use crate::cli::{error, info, note, warn};
use crate::config::{Config, ProcessEnv};
use crate::keys::{JobId, Keys, Set, Tag};
use crate::store::Store;
use crate::{results_spool, spool};

use judge::{Answers, Index, Planned};
use lease::{Lease, LeaseKeeper};
use moves::{print_move, LineFormat, Note, Unreported, MOVE_BATCH};
use query::{Query, SlurmClient};

/// What the command line chose, as plain values.
#[derive(Debug, Clone)]
pub struct Settings {
    /// Track every tag that has a PENDING_AND_RUNNING set, found by SCAN each tick.
    pub all_tags: bool,
    pub interval: Duration,
    pub once: bool,
    pub lost_after: Duration,
    /// How long a job must have been PREEMPTED (and not requeued) before it is final.
    pub preempt_grace: Duration,
    pub record_ttl: Option<Duration>,
    /// About how many entries the tag's event stream keeps (`XADD MAXLEN ~`); 0 writes none.
    pub events_max: u64,
    pub format: LineFormat,
    /// Where to write the tick's OpenMetrics text (node_exporter's textfile collector).
    pub metrics_file: Option<std::path::PathBuf>,
    /// scancel the pending jobs Slurm says can never start (`DependencyNeverSatisfied`).
    pub cancel_never: bool,
}

/// What a tick did, for the summary line under -v.
#[derive(Debug, Default)]
pub struct TickSummary {
    pub tracked: usize,
    pub moved: usize,
    pub unknown: usize,
    /// Jobs only sacct could judge, while sacct failed.
    pub unanswered: usize,
    pub slurm_calls: u64,
    /// Slurm answered and the jobs were judged (the tick had jobs, and squeue did not fail).
    pub judged: bool,
    /// One line per finished job whose job hash has the wrong type, so it was not moved.
    pub refused: Vec<String>,
}

impl TickSummary {
    /// The error of a `--once` tick that refused jobs (job hashes of the wrong type): 65, one
    /// line naming the first key and how many more.
    pub fn refusal(&self) -> Option<anyhow::Error> {
        refusal(&self.refused)
    }
}

fn refusal(refused: &[String]) -> Option<anyhow::Error> {
    let first = refused.first()?;
    let more = match refused.len() {
        1 => String::new(),
        n => format!(
            " ({} more finished job(s) not moved for the same reason)",
            n - 1
        ),
    };
    Some(crate::exit::fail(
        crate::exit::Kind::DataErr,
        format!("{first}{more}"),
    ))
}

/// At most `n` IDs for a message, then how many more.
fn some_ids(ids: &[String], n: usize) -> String {
    let mut s = ids.iter().take(n).cloned().collect::<Vec<_>>().join(" ");
    if ids.len() > n {
        s.push_str(&format!(" … ({} more)", ids.len() - n));
    }
    s
}

fn now_secs() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A tag whose lease this tick holds, with the job IDs it tracks (and the cluster of each, from
/// its job hash: `None` for the default cluster) and what the tick did to them.
struct Active {
    keys: Keys,
    ids: Vec<String>,
    clusters: Vec<Option<String>>,
    moved: usize,
    unknown: usize,
}

impl Active {
    fn new(keys: Keys, ids: Vec<String>, clusters: Vec<Option<String>>) -> Active {
        Active {
            keys,
            ids,
            clusters,
            moved: 0,
            unknown: 0,
        }
    }
}

/// rj-track's figures of one tick for one tag, as the `T_TRACKER:tick` hash holds them
/// (ARCHITECTURE.md §2).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TickFigures {
    /// Unix seconds of the tick's start.
    pub at: u64,
    pub duration_ms: u64,
    /// Slurm commands the whole tick ran (one squeue serves every tag).
    pub slurm_commands: u64,
    /// Jobs pending in the tag.
    pub tracked: usize,
    pub moved: usize,
    /// Jobs Slurm did not know this tick.
    pub unknown: usize,
    /// The lease owner.
    pub owner: String,
}

impl TickFigures {
    /// The hash's fields, in the contract's order.
    pub fn fields(&self) -> [(&'static str, String); 7] {
        [
            ("at", self.at.to_string()),
            ("duration_ms", self.duration_ms.to_string()),
            ("slurm_commands", self.slurm_commands.to_string()),
            ("tracked", self.tracked.to_string()),
            ("moved", self.moved.to_string()),
            ("unknown", self.unknown.to_string()),
            ("owner", self.owner.clone()),
        ]
    }
}

/// Everything that survives from tick to tick.
pub struct Tracker {
    settings: Settings,
    cfg: Config,
    /// Tags from the command line or the config; empty with --all-tags.
    tags: Vec<Tag>,
    store: Option<Store>,
    owner: String,
    lease_ttl: Duration,
    /// Tags whose lease we hold (for messages on change, and release at exit).
    holding: HashSet<Tag>,
    /// Tags whose unknown-jobs hash may hold entries to forget.
    unknown_dirty: HashSet<Tag>,
    /// Slurm, and whether it has accounting.
    query: Query,
    redis_failures: u32,
    /// Moves sent to Redis whose reply was lost; their lines are printed once Redis answers.
    unreported: Vec<Unreported>,
    /// Per tag, how many rj-put spool files Redis refuses for good, as last reported: said again
    /// only when it changes, not every tick.
    results_stuck: HashMap<Tag, usize>,
    /// Per tag, the cluster of each tracked job (a job never changes cluster): each job hash
    /// is read once, when its ID first shows up.
    clusters: HashMap<Tag, HashMap<String, Option<String>>>,
    /// Per tag, the restart count last noted in each requeued job's hash, so a requeue is
    /// written once, not every tick.
    requeues: HashMap<Tag, HashMap<String, String>>,
    /// Per tag, the pending reason last noted in each job's hash, so only a change is written.
    reasons: HashMap<Tag, HashMap<String, String>>,
    /// The jobs (or tasks) of each cluster this tracker cancelled with `--cancel-never`, while
    /// squeue still shows them pending: scancel is not asked twice.
    cancelled: HashSet<(Option<String>, String)>,
}

impl Tracker {
    /// `owner` names this tracker in the lease and the records (host:pid:nonce).
    pub fn new(
        settings: Settings,
        cfg: Config,
        tags: Vec<Tag>,
        owner: String,
        slurm: Box<dyn SlurmClient>,
    ) -> Tracker {
        Tracker {
            lease_ttl: (settings.interval * 3).max(Duration::from_secs(5)),
            settings,
            cfg,
            tags,
            store: None,
            owner,
            holding: HashSet::new(),
            unknown_dirty: HashSet::new(),
            query: Query::new(slurm),
            redis_failures: 0,
            unreported: Vec::new(),
            results_stuck: HashMap::new(),
            clusters: HashMap::new(),
            requeues: HashMap::new(),
            reasons: HashMap::new(),
            cancelled: HashSet::new(),
        }
    }

    pub fn owner(&self) -> &str {
        &self.owner
    }

    /// A new configuration (SIGHUP): give the leases back, reconnect at the next tick, and ask
    /// sacct again.
    pub fn reconfigure(&mut self, cfg: Config, tags: Vec<Tag>) {
        if let Some(e) = self.release_all() {
            warn(&format!("cannot release the leases: {e:#}"));
        }
        self.cfg = cfg;
        self.tags = tags;
        self.store = None;
        self.query.forget();
    }

    /// A tick ended in a Redis error a retry can fix: drop the connection. Returns how many
    /// ticks in a row have failed so, for the backoff.
    pub fn failed(&mut self) -> u32 {
        self.store = None;
        self.redis_failures += 1;
        self.redis_failures
    }

    /// A tick succeeded: the next failure starts the backoff again.
    pub fn succeeded(&mut self) {
        self.redis_failures = 0;
    }

    /// Give up every lease held, so that a standby takes over at once. A Redis that is down
    /// only delays that by one lease time (a warning); a refused DEL would do so at every stop
    /// and is returned, so that the exit status says what the user lacks.
    pub fn release_all(&mut self) -> Option<anyhow::Error> {
        let store = self.store.as_mut()?;
        let mut refused = None;
        for tag in std::mem::take(&mut self.holding) {
            match store.release(&Keys::new(tag.clone()), &self.owner) {
                Ok(_) => {}
                Err(e) if crate::exit::is_transient(&e) => {
                    warn(&format!("cannot release the lease of {tag}: {e:#}"))
                }
                Err(e) => {
                    refused.get_or_insert(e);
                }
            }
        }
        refused
    }

    /// One tick. Errors are Redis errors (the caller reconnects); Slurm trouble is reported
    /// here and ends the tick without moves.
    pub fn tick(&mut self, out: &mut dyn Write) -> anyhow::Result<TickSummary> {
        let start = (now_secs(), Instant::now(), self.query.commands());
        let mut store = self.connect()?;
        // The store goes back whatever happens: release_all needs it after an error.
        let result = self.tick_with(&mut store, out, start);
        self.store = Some(store);
        result
    }

    /// The tick on a connected store; `start` is when it began (unix seconds and instant) and
    /// how many Slurm commands had run by then.
    fn tick_with(
        &mut self,
        store: &mut Store,
        out: &mut dyn Write,
        start: (u64, Instant, u64),
    ) -> anyhow::Result<TickSummary> {
        self.report_lost_replies(store, out)?;
        let mut active = Vec::new();
        let tags = self.tags_of_tick(store)?;
        for tag in tags.iter().cloned() {
            let keys = Keys::new(tag);
            self.replay_spools(store, &keys)?;
            if self.take_lease(store, &keys)? {
                let ids = read_tracked(store, &keys)?;
                let clusters = self.clusters_of(store, &keys, &ids)?;
                active.push(Active::new(keys, ids, clusters));
            }
        }
        let mut summary = self.judge_and_move(store, &mut active, out)?;
        summary.slurm_calls = self.query.commands() - start.2;
        if summary.judged {
            summarise(&summary);
        }
        self.write_figures(store, &active, &summary, start)?;
        self.write_metrics(store, &tags)?;
        Ok(summary)
    }

    /// Step 8c, with `--metrics-file`: the figures of every tag of the tick (also those another
    /// tracker holds: they are the ledger's, not this tracker's) as OpenMetrics text, replacing
    /// the file atomically. A file that cannot be written is warned about, not a reason to stop
    /// tracking; a Redis error is the tick's.
    fn write_metrics(&self, store: &mut Store, tags: &[Tag]) -> anyhow::Result<()> {
        let Some(path) = &self.settings.metrics_file else {
            return Ok(());
        };
        let mut figures = Vec::with_capacity(tags.len());
        for tag in tags {
            figures.push(crate::metrics::collect(store, &Keys::new(tag.clone()))?);
        }
        let text = crate::metrics::render(&figures, now_secs());
        if let Err(e) = crate::metrics::write_file(path, &text) {
            warn(&format!("{e:#}"));
        }
        Ok(())
    }

    /// Steps 5 to 7 for the tags whose lease the tick holds.
    fn judge_and_move(
        &mut self,
        store: &mut Store,
        active: &mut [Active],
        out: &mut dyn Write,
    ) -> anyhow::Result<TickSummary> {
        let mut summary = TickSummary {
            tracked: active.iter().map(|a| a.ids.len()).sum(),
            ..TickSummary::default()
        };
        if summary.tracked == 0 {
            // Nothing to ask Slurm; only forget stale unknown entries.
            for a in active.iter() {
                if self.unknown_dirty.remove(a.keys.tag()) {
                    store.unknown_since(&a.keys, &[], now_secs())?;
                }
            }
            return Ok(summary);
        }
        let groups = cluster_groups(active);
        let _keeper = LeaseKeeper::start(
            self.cfg.clone(),
            active.iter().map(|a| a.keys.clone()).collect(),
            self.owner.clone(),
            self.lease_ttl,
        );
        let mut replies = Vec::new();
        let mut failed = Vec::new();
        for ((cluster, _), r) in groups.iter().zip(self.query.ask_all(&groups)) {
            match r {
                Ok(r) => replies.push(Some(r)),
                Err(e) => {
                    replies.push(None);
                    failed.push((cluster.clone(), query::no_answer(&e)));
                }
            }
        }
        // squeue failing on every cluster (the usual case: one cluster) ends the tick; on some,
        // their jobs stay while the others are judged. --once reports any failure.
        if let Some((_, e)) = failed
            .pop()
            .filter(|_| self.settings.once || replies.iter().all(Option::is_none))
        {
            if self.settings.once {
                return Err(e);
            }
            error(&format!("{e}"));
            return Ok(summary);
        }
        for (cluster, e) in &failed {
            error(&format!(
                "cluster {}: {e}",
                cluster.as_deref().unwrap_or("(default)")
            ));
        }
        // The tick's time, formatted once for every record.
        let squeue_at = replies
            .iter()
            .flatten()
            .map(|r| r.squeue_at)
            .next()
            .unwrap_or_else(SystemTime::now);
        let tracked_at = humantime::format_rfc3339_seconds(squeue_at).to_string();
        let indexes: Vec<Option<Index>> = replies
            .iter()
            .map(|r| r.as_ref().map(|r| Index::new(&r.squeue)))
            .collect();
        let decided: Vec<HashMap<&str, judge::Decision>> = groups
            .iter()
            .zip(&replies)
            .zip(&indexes)
            .map(|(((_, ids), r), squeue)| match (r, squeue) {
                (Some(r), Some(squeue)) => {
                    let answers = Answers {
                        squeue,
                        sacct: r.sacct.as_deref().map(Index::new),
                        scontrol: r.scontrol.as_deref().map(Index::new),
                        accounting: r.accounting,
                    };
                    judge::judge_all(ids, &r.asked, &answers, &tracked_at)
                }
                _ => HashMap::new(),
            })
            .collect();
        let group_of: HashMap<Option<&str>, usize> = groups
            .iter()
            .enumerate()
            .map(|(i, (c, _))| (c.as_deref(), i))
            .collect();

        summary.judged = true;
        let now = now_secs();
        // Per cluster, the pending jobs (or tasks) Slurm says can never start.
        let mut never: BTreeMap<Option<String>, Vec<String>> = BTreeMap::new();
        for a in active.iter_mut() {
            let sorted = judge::sort_decisions(&a.ids, |i| {
                let g = group_of.get(&a.clusters[i].as_deref())?;
                decided[*g].get(a.ids[i].as_str())
            });
            for (id, state) in &sorted.unrecognized {
                warn(&format!(
                    "job {id} of {} is in Slurm state {state:?}, which rj does not know; left in {}",
                    a.keys.tag(),
                    a.keys.set(Set::PendingAndRunning)
                ));
            }
            summary.unanswered += sorted.unanswered;
            let mut plan = sorted.plan;
            plan.extend(self.age_unknown(
                store,
                &a.keys,
                &sorted.unknown,
                sorted.preempted,
                now,
                &tracked_at,
            )?);
            let mut waiting = Vec::new();
            for (i, id) in a.ids.iter().enumerate() {
                let squeue = group_of
                    .get(&a.clusters[i].as_deref())
                    .and_then(|g| indexes[*g].as_ref());
                if let Some(w) = squeue.and_then(|s| judge::waiting(&s.covering(id))) {
                    never
                        .entry(a.clusters[i].clone())
                        .or_default()
                        .extend(w.never);
                    waiting.push((id.clone(), w.reason));
                }
            }
            self.note_live(
                store,
                &a.keys,
                &a.ids,
                &sorted.requeued,
                &waiting,
                &tracked_at,
            )?;
            a.unknown = sorted.unknown.len();
            summary.unknown += a.unknown;
            let before = summary.moved;
            self.move_and_print(store, &a.keys, &plan, &tracked_at, out, &mut summary)?;
            a.moved = summary.moved - before;
        }
        self.cancel_never(never);
        Ok(summary)
    }

    /// Step 7d, with `--cancel-never`: one scancel per cluster for the pending jobs (or tasks)
    /// Slurm says can never start, each asked once while it stays pending. A scancel that fails
    /// is warned about and asked again next tick.
    fn cancel_never(&mut self, mut never: BTreeMap<Option<String>, Vec<String>>) {
        if !self.settings.cancel_never {
            return;
        }
        for (cluster, ids) in never.iter_mut() {
            ids.sort();
            ids.dedup();
            let new: Vec<String> = ids
                .iter()
                .filter(|id| !self.cancelled.contains(&(cluster.clone(), (*id).clone())))
                .cloned()
                .collect();
            if new.is_empty() {
                continue;
            }
            let on = cluster
                .as_deref()
                .map(|c| format!(" on cluster {c}"))
                .unwrap_or_default();
            match self.query.cancel(cluster.as_deref(), &new) {
                Ok(()) => {
                    note(&format!(
                        "--cancel-never: cancelled {} job(s){on} that can never start: {}",
                        new.len(),
                        some_ids(&new, 10)
                    ));
                    self.cancelled
                        .extend(new.into_iter().map(|id| (cluster.clone(), id)));
                }
                Err(e) => warn(&format!("--cancel-never: {e}; trying again next tick")),
            }
        }
        self.cancelled
            .retain(|(c, id)| never.get(c).is_some_and(|ids| ids.contains(id)));
    }

    /// Step 8b: the tick's figures, one hash per tag whose lease the tracker still holds, all
    /// in one round trip.
    fn write_figures(
        &self,
        store: &mut Store,
        active: &[Active],
        summary: &TickSummary,
        (at, started, _): (u64, Instant, u64),
    ) -> anyhow::Result<()> {
        let duration_ms = started.elapsed().as_millis() as u64;
        let figures: Vec<(&Keys, TickFigures)> = active
            .iter()
            .filter(|a| self.holding.contains(a.keys.tag()))
            .map(|a| {
                let f = TickFigures {
                    at,
                    duration_ms,
                    slurm_commands: summary.slurm_calls,
                    tracked: a.ids.len(),
                    moved: a.moved,
                    unknown: a.unknown,
                    owner: self.owner.clone(),
                };
                (&a.keys, f)
            })
            .collect();
        store.write_tick_figures(&figures)
    }

    /// Step 1: the connection, made when there is none (after a start, a failure, a SIGHUP).
    fn connect(&mut self) -> anyhow::Result<Store> {
        if let Some(s) = self.store.take() {
            return Ok(s);
        }
        let mut s = Store::connect(&self.cfg)?;
        for t in &self.tags {
            s.check_tag(t)?;
        }
        s.warn_if_evicting();
        if self.redis_failures > 0 {
            note(&format!("reconnected to Redis at {}", s.place));
        }
        Ok(s)
    }

    /// Step 2: of the moves whose reply a dropped connection lost, print the ones that did
    /// happen (Redis's record says so), once.
    fn report_lost_replies(
        &mut self,
        store: &mut Store,
        out: &mut dyn Write,
    ) -> anyhow::Result<()> {
        if self.unreported.is_empty() {
            return Ok(());
        }
        let lost = std::mem::take(&mut self.unreported);
        let made = match store.moves_made(&self.owner, &lost) {
            Ok(m) => m,
            Err(e) => {
                self.unreported = lost;
                return Err(e);
            }
        };
        let mut found = 0;
        for (u, _) in lost.iter().zip(&made).filter(|(_, m)| **m) {
            print_move(
                out,
                self.settings.format,
                u.tag.as_str(),
                &u.planned,
                &u.tracked_at,
            )?;
            found += 1;
        }
        out.flush()?;
        if found > 0 {
            note(&format!(
                "reported {found} move(s) made at {} whose reply the dropped connection lost",
                lost[0].tracked_at
            ));
        }
        Ok(())
    }

    /// Step 3: the `--tag`s, or with `--all-tags` every tag that has a pending set.
    fn tags_of_tick(&self, store: &mut Store) -> anyhow::Result<Vec<Tag>> {
        if self.settings.all_tags {
            store.tags_with_pending()
        } else {
            Ok(self.tags.clone())
        }
    }

    /// Step 4a: record what rj-launch spooled and apply what rj-put spooled while Redis was
    /// away.
    fn replay_spools(&mut self, store: &mut Store, keys: &Keys) -> anyhow::Result<()> {
        let tag = keys.tag();
        let spool_path = spool::path(tag, &ProcessEnv);
        match spool::replay_with(store, keys, &spool_path, self.settings.events_max) {
            Ok(r) => r.report(tag, &spool_path),
            // Redis refused or failed the replay: like any Redis error of the tick (the
            // daemon retries a transient one, exits on a permanent one). A spool file rj
            // cannot read is the only thing to warn about and go on.
            Err(e) if crate::exit::kind_of(&e).is_some() => return Err(e),
            Err(e) => warn(&format!("{e:#}")),
        }
        let results = results_spool::dir(tag, &ProcessEnv);
        match results_spool::replay(store, keys, &results) {
            Ok(mut r) => {
                let stuck = r.stuck.len();
                if self.results_stuck.insert(tag.clone(), stuck) == Some(stuck) {
                    r.stuck.clear();
                }
                r.report(tag, &results);
            }
            Err(e) if crate::exit::kind_of(&e).is_some() => return Err(e),
            Err(e) => warn(&format!("{e:#}")),
        }
        Ok(())
    }

    /// Step 4b: take or renew the tag's lease. False when another tracker holds it (the tag is
    /// skipped this tick).
    fn take_lease(&mut self, store: &mut Store, keys: &Keys) -> anyhow::Result<bool> {
        let tag = keys.tag();
        match store.lease(keys, &self.owner, self.lease_ttl)? {
            Lease::Renewed => {}
            Lease::Taken => {
                if self.holding.insert(tag.clone()) {
                    info(&format!("took the lease {}", keys.tracker()));
                }
            }
            Lease::HeldBy(other) => {
                if self.holding.remove(tag) || self.settings.once {
                    note(&format!(
                        "tag {tag} is tracked by {other} ({}); standing by",
                        keys.tracker()
                    ));
                } else {
                    info(&format!("tag {tag} is tracked by {other}; standing by"));
                }
                return Ok(false);
            }
        }
        self.holding.insert(tag.clone());
        Ok(true)
    }

    /// Step 7a: record which jobs Slurm does not know, and which are PREEMPTED (as
    /// `preempted:ID` in the same hash of first times), and forget the others; returns the LOST
    /// moves of those unknown for `--lost-after` and the moves of those PREEMPTED for
    /// `--preempt-grace`, and names the others.
    fn age_unknown(
        &mut self,
        store: &mut Store,
        keys: &Keys,
        unknown: &[String],
        preempted: Vec<Planned>,
        now: u64,
        tracked_at: &str,
    ) -> anyhow::Result<Vec<Planned>> {
        if unknown.is_empty() && preempted.is_empty() && !self.unknown_dirty.contains(keys.tag()) {
            return Ok(Vec::new());
        }
        let mut names = unknown.to_vec();
        names.extend(preempted.iter().map(|p| format!("preempted:{}", p.id)));
        let since = store.unknown_since(keys, &names, now)?;
        if names.is_empty() {
            self.unknown_dirty.remove(keys.tag());
        } else {
            self.unknown_dirty.insert(keys.tag().clone());
        }
        let (since, preempted_since) = since.split_at(unknown.len());
        let grace = self.settings.preempt_grace;
        let (mut ready, waiting) = judge::confirm_preempted(preempted, preempted_since, now, grace);
        if !waiting.is_empty() {
            info(&format!(
                "{} job(s) of {} PREEMPTED, final after {} unless Slurm requeues them: {}",
                waiting.len(),
                keys.tag(),
                humantime::format_duration(grace),
                some_ids(&waiting, 10)
            ));
        }
        let lost_after = self.settings.lost_after;
        let (lost, still) = judge::lost_moves(unknown, since, now, lost_after, tracked_at);
        if !still.is_empty() {
            note(&format!(
                "{} job(s) of {} unknown to Slurm (moved to FAILED as LOST after {}): {}",
                still.len(),
                keys.tag(),
                humantime::format_duration(lost_after),
                some_ids(&still, 10)
            ));
        }
        ready.extend(lost);
        Ok(ready)
    }

    /// Step 7b: note in the hashes of live jobs what changed since the last note (fenced by the
    /// lease, one script for the tag): `restarts` and `requeued_at` of the jobs Slurm requeued,
    /// and the `reason` of the pending ones. Each requeue is said once, and a pending job Slurm
    /// will never start is warned about once: when its reason is written (once per job, through
    /// the hash, also across `--once` runs).
    fn note_live(
        &mut self,
        store: &mut Store,
        keys: &Keys,
        ids: &[String],
        requeued: &[(String, String)],
        waiting: &[(String, String)],
        tracked_at: &str,
    ) -> anyhow::Result<()> {
        let tag = keys.tag().clone();
        let keep: HashSet<&str> = ids.iter().map(String::as_str).collect();
        let restarts = self.requeues.entry(tag.clone()).or_default();
        restarts.retain(|id, _| keep.contains(id.as_str()));
        let reasons = self.reasons.entry(tag.clone()).or_default();
        reasons.retain(|id, _| keep.contains(id.as_str()));
        let mut notes: Vec<Note> = requeued
            .iter()
            .filter(|(id, n)| restarts.get(id) != Some(n))
            .map(|(id, n)| Note {
                id: id.clone(),
                field: "restarts",
                value: n.clone(),
                also: vec![("requeued_at", tracked_at.to_string())],
            })
            .collect();
        notes.extend(
            waiting
                .iter()
                .filter(|(id, r)| reasons.get(id) != Some(r))
                .map(|(id, r)| Note {
                    id: id.clone(),
                    field: "reason",
                    value: r.clone(),
                    also: Vec::new(),
                }),
        );
        if notes.is_empty() {
            return Ok(());
        }
        let Some(written) = store.note_jobs(keys, &self.owner, &notes)? else {
            return Ok(()); // the move step says so, and stands by
        };
        for (n, wrote) in notes.into_iter().zip(written) {
            match n.field {
                "restarts" => {
                    if wrote {
                        info(&format!(
                            "job {} of {tag} was requeued by Slurm (restarts {}); still tracked",
                            n.id, n.value
                        ));
                    }
                    self.requeues
                        .entry(tag.clone())
                        .or_default()
                        .insert(n.id, n.value);
                }
                _ => {
                    if wrote && crate::slurm::never_satisfied(&n.value) {
                        warn(&format!(
                            "job {} of {tag} can never start: Slurm says {} (a job it depends \
                             on failed); cancel it, or run rj-track with --cancel-never",
                            n.id, n.value
                        ));
                    }
                    self.reasons
                        .entry(tag.clone())
                        .or_default()
                        .insert(n.id, n.value);
                }
            }
        }
        Ok(())
    }

    /// Step 7c: move the planned jobs in batches of the move script, each printed as soon as
    /// its reply is in, so a later batch's failure never hides the lines of moves already made.
    fn move_and_print(
        &mut self,
        store: &mut Store,
        keys: &Keys,
        plan: &[Planned],
        tracked_at: &str,
        out: &mut dyn Write,
        summary: &mut TickSummary,
    ) -> anyhow::Result<()> {
        for batch in plan.chunks(MOVE_BATCH) {
            let reply = match store.move_jobs(
                keys,
                &self.owner,
                self.lease_ttl,
                self.settings.record_ttl,
                self.settings.events_max,
                batch,
            ) {
                Err(e) => {
                    // The script may have run with only its reply lost: keep the batch so
                    // the next tick can print the moves that did happen (and only those).
                    // A permanent error moved nothing: the script checks before it writes.
                    if crate::exit::is_transient(&e) {
                        self.unreported
                            .extend(batch.iter().map(|planned| Unreported {
                                tag: keys.tag().clone(),
                                planned: planned.clone(),
                                tracked_at: tracked_at.to_string(),
                            }));
                    }
                    return Err(e);
                }
                Ok(Some(r)) => r,
                Ok(None) => {
                    self.holding.remove(keys.tag());
                    note(&format!(
                        "lost the lease {} to another tracker during the tick; nothing moved, standing by",
                        keys.tracker()
                    ));
                    break;
                }
            };
            let moved: HashSet<&str> = reply.moved.iter().map(String::as_str).collect();
            for p in batch.iter().filter(|p| moved.contains(p.id.as_str())) {
                print_move(
                    out,
                    self.settings.format,
                    keys.tag().as_str(),
                    p,
                    tracked_at,
                )?;
                summary.moved += 1;
            }
            out.flush()?;
            // The moves happened on this server and are printed; with "min_replicas_acked" a
            // shortfall is a transient error, and a move a failover lost is made again by a
            // later tick, as the job is pending again on the new master.
            if !reply.moved.is_empty() {
                store.wait_replicas()?;
            }
            for (id, found) in &reply.refused {
                let set = batch
                    .iter()
                    .find(|p| &p.id == id)
                    .map_or("its final set", |p| p.set.suffix());
                summary.refused.push(format!(
                    "{} holds a {found}, not a hash: job {id} finished ({set}) but stays in {} \
                     until that key is deleted or made a hash",
                    keys.job_hash(id),
                    keys.set(Set::PendingAndRunning)
                ));
            }
            let skipped = batch.len() - moved.len() - reply.refused.len();
            if skipped > 0 {
                info(&format!(
                    "{skipped} finished job(s) of {} were already moved by someone else",
                    keys.tag()
                ));
            }
        }
        Ok(())
    }
}

impl Tracker {
    /// Step 4d: the cluster of each tracked ID, from the cache, reading the `cluster` field of
    /// the job hashes of IDs not seen before (pipelined HGETs, once per job); the cache keeps
    /// only the tag's current IDs.
    fn clusters_of(
        &mut self,
        store: &mut Store,
        keys: &Keys,
        ids: &[String],
    ) -> anyhow::Result<Vec<Option<String>>> {
        let mut known = self.clusters.remove(keys.tag()).unwrap_or_default();
        let new: Vec<&String> = ids.iter().filter(|id| !known.contains_key(*id)).collect();
        if !new.is_empty() {
            let read = store.job_clusters(keys, &new)?;
            for (id, c) in new.into_iter().zip(read) {
                known.insert(id.clone(), c);
            }
        }
        let clusters: Vec<Option<String>> = ids.iter().map(|id| known[id].clone()).collect();
        if known.len() > ids.len() {
            let keep: HashSet<&str> = ids.iter().map(String::as_str).collect();
            known.retain(|id, _| keep.contains(id.as_str()));
        }
        self.clusters.insert(keys.tag().clone(), known);
        Ok(clusters)
    }
}

/// Step 4c: the tag's tracked IDs; entries that are not Slurm job IDs are left alone, with a
/// warning.
fn read_tracked(store: &mut Store, keys: &Keys) -> anyhow::Result<Vec<String>> {
    let (good, bad): (Vec<String>, Vec<String>) = store
        .pending(keys)?
        .into_iter()
        .partition(|id| id.parse::<JobId>().is_ok());
    if !bad.is_empty() {
        warn(&format!(
            "{} holds {} entries that are not Slurm job IDs, left alone: {}",
            keys.set(Set::PendingAndRunning),
            bad.len(),
            some_ids(&bad, 5)
        ));
    }
    Ok(good)
}

/// Step 5's input: every tag's IDs once per cluster, in job order, for one squeue per cluster.
fn cluster_groups(active: &[Active]) -> Vec<(Option<String>, Vec<String>)> {
    query::group_by_cluster(active.iter().flat_map(|a| {
        a.clusters
            .iter()
            .map(Option::as_deref)
            .zip(a.ids.iter().map(String::as_str))
    }))
}

/// Step 8: one line under -v.
fn summarise(s: &TickSummary) {
    info(&format!(
        "tick: {} tracked, {} moved, {} refused, {} unknown, {} unanswered, {} Slurm command(s)",
        s.tracked,
        s.moved,
        s.refused.len(),
        s.unknown,
        s.unanswered,
        s.slurm_calls
    ));
}

impl Store {
    /// HSET each tag's `T_TRACKER:tick` (no TTL: the figures of the last tick stay), in one
    /// pipelined round trip; an error names the key.
    pub fn write_tick_figures(&mut self, figures: &[(&Keys, TickFigures)]) -> anyhow::Result<()> {
        if figures.is_empty() {
            return Ok(());
        }
        let mut p = redis::pipe();
        p.ignore_errors();
        for (keys, f) in figures {
            let c = p.cmd("HSET").arg(keys.tracker_tick());
            for (k, v) in f.fields() {
                c.arg(k).arg(v);
            }
        }
        let replies: Vec<redis::RedisResult<redis::Value>> = self.pipe(&p, "the tick figures")?;
        for (r, (keys, _)) in replies.into_iter().zip(figures) {
            if let Err(e) = r {
                return Err(self.error(e, &keys.tracker_tick()));
            }
        }
        Ok(())
    }

    /// The `cluster` field of the jobs' hashes (`None`: no such field, or not a hash, which
    /// the move script refuses later), by pipelined HGETs in batches; any other error names
    /// the key.
    pub fn job_clusters(
        &mut self,
        keys: &Keys,
        ids: &[&String],
    ) -> anyhow::Result<Vec<Option<String>>> {
        let mut out = Vec::with_capacity(ids.len());
        for batch in ids.chunks(10_000) {
            let mut p = redis::pipe();
            p.ignore_errors();
            for id in batch {
                p.cmd("HGET").arg(keys.job_hash(id)).arg("cluster");
            }
            let replies: Vec<redis::RedisResult<Option<String>>> =
                self.pipe(&p, "the clusters of the job hashes")?;
            for (r, id) in replies.into_iter().zip(batch) {
                match r {
                    Ok(c) => out.push(c.filter(|c| !c.is_empty())),
                    Err(e) if e.code() == Some("WRONGTYPE") => out.push(None),
                    Err(e) => return Err(self.error(e, &keys.job_hash(id))),
                }
            }
        }
        Ok(out)
    }

    /// All tracked IDs of a tag in one round trip.
    pub fn pending(&mut self, keys: &Keys) -> anyhow::Result<Vec<String>> {
        let key = keys.set(Set::PendingAndRunning);
        self.query(redis::cmd("SMEMBERS").arg(&key), &key)
    }

    /// Tags that have a PENDING_AND_RUNNING set.
    pub fn tags_with_pending(&mut self) -> anyhow::Result<Vec<Tag>> {
        let suffix = format!("_{}", Set::PendingAndRunning.suffix());
        // As bytes: one key of another program whose name is not UTF-8 must not stop tracking.
        let keys = self.scan_bytes(&format!("*{suffix}"))?;
        Ok(keys
            .iter()
            .filter_map(|k| std::str::from_utf8(k).ok())
            .filter_map(|k| k.strip_suffix(&suffix))
            .filter_map(|t| Tag::new(t).ok())
            .filter(|t| self.fits(t))
            .collect())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn one_refused_job_is_one_line_and_more_are_counted() {
        assert!(refusal(&[]).is_none());
        let one = refusal(&["T_JOB:1 holds a string".into()]).unwrap();
        assert_eq!(one.to_string(), "T_JOB:1 holds a string");
        assert_eq!(crate::exit::code_for(&one), 65);
        let two = refusal(&["a".into(), "b".into()]).unwrap().to_string();
        assert!(two.starts_with("a (1 more"), "{two}");
    }

    fn active(tag: &str, ids: &[&str], clusters: &[Option<&str>]) -> Active {
        Active::new(
            Keys::new(Tag::new(tag).unwrap()),
            ids.iter().map(|s| s.to_string()).collect(),
            clusters.iter().map(|c| c.map(str::to_string)).collect(),
        )
    }

    #[test]
    fn ids_are_asked_once_in_job_order() {
        let all = cluster_groups(&[
            active("t1", &["10", "9", "9_2"], &[None, None, None]),
            active("t2", &["9", "100"], &[None, None]),
        ]);
        assert_eq!(
            all,
            [(
                None,
                vec!["9".into(), "9_2".into(), "10".into(), "100".into()]
            )]
        );
    }

    /// The same ID in two tags is two jobs when their clusters differ: asked of each cluster.
    #[test]
    fn ids_are_asked_of_their_own_cluster() {
        let g = cluster_groups(&[
            active("t1", &["5", "6"], &[Some("b"), None]),
            active("t2", &["5", "7"], &[Some("a"), Some("b")]),
        ]);
        let names: Vec<(Option<&str>, Vec<&str>)> = g
            .iter()
            .map(|(c, ids)| (c.as_deref(), ids.iter().map(String::as_str).collect()))
            .collect();
        assert_eq!(
            names,
            [
                (None, vec!["6"]),
                (Some("a"), vec!["5"]),
                (Some("b"), vec!["5", "7"])
            ]
        );
    }

    #[test]
    fn tick_figures_in_the_contracts_order() {
        let f = TickFigures {
            at: 1_767_225_600,
            duration_ms: 12,
            slurm_commands: 2,
            tracked: 5,
            moved: 1,
            unknown: 3,
            owner: "h:1:0000abcd".into(),
        };
        let names: Vec<&str> = f.fields().iter().map(|(k, _)| *k).collect();
        assert_eq!(
            names,
            [
                "at",
                "duration_ms",
                "slurm_commands",
                "tracked",
                "moved",
                "unknown",
                "owner"
            ]
        );
        assert_eq!(f.fields()[0].1, "1767225600");
        assert_eq!(f.fields()[6].1, "h:1:0000abcd");
    }

    #[test]
    fn a_few_ids_then_how_many_more() {
        let ids: Vec<String> = (1..=7).map(|i| i.to_string()).collect();
        assert_eq!(some_ids(&ids[..2], 5), "1 2");
        assert_eq!(some_ids(&ids, 5), "1 2 3 4 5 … (2 more)");
    }
}
