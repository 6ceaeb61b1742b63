complete -c rj-track -l config -d 'Read Redis settings from this redis.json (default: $RJ_CONFIG, ./redis.json, ~/.config/rj/redis.json)' -r -F
complete -c rj-track -l url -d 'Redis URL (redis://, rediss://, unix://, redis+sentinel://h:p,h:p/MASTER); overrides redis.json and REDIS_URL. Prefer REDIS_URL or redis.json for passwords: a command line is visible to every user' -r
complete -c rj-track -l tag -d 'Experiment tag to track; repeatable (default: $JOB_TAG, $job_tag, "job_tag" in redis.json)' -r
complete -c rj-track -l interval -d 'Time between ticks' -r
complete -c rj-track -l lost-after -d 'Move a job that Slurm no longer knows at all to FAILED (state=LOST) after this long' -r
complete -c rj-track -l preempt-grace -d 'A job Slurm reports PREEMPTED is final (FAILED, state=PREEMPTED) only when squeue no longer lists it as pending or running, accounting agrees, and it has stayed so this long: with PreemptMode=REQUEUE Slurm brings it back as PENDING with the same ID, and rj-track then keeps tracking it and writes restarts and requeued_at into its record' -r
complete -c rj-track -l record-ttl -d 'Expire the job hash TAG_JOB:<id> this long after the job is moved (e.g. 7d)' -r
complete -c rj-track -l events-max -d 'Append one entry per move to the event stream TAG_EVENTS (XADD, in the same script as the move), keeping about this many (MAXLEN ~ N); 0 writes none' -r
complete -c rj-track -l format -d 'Form of the move lines on stdout' -r -f -a "text\t'`TAG ID SET EXIT_CODE STATE`, space-separated; STATE last, as it may hold spaces'
json\t'One JSON object per line (JSON Lines) with the whole record'"
complete -c rj-track -l metrics-file -d 'After each tick, write the tags\' figures as OpenMetrics text (what `rj-status --format openmetrics` prints) to this file, replaced atomically: point it into node_exporter\'s --collector.textfile.directory, as a file ending in .prom' -r -F
complete -c rj-track -s q -l quiet -d 'Print only errors'
complete -c rj-track -s v -l verbose -d 'Say more on stderr (where the config came from, what is done)'
complete -c rj-track -l all-tags -d 'Track every tag that has a TAG_PENDING_AND_RUNNING set (found by SCAN each tick). On a Redis shared with colleagues this takes over their tags too: list yours with --tag'
complete -c rj-track -l once -d 'Run one tick and exit (for cron)'
complete -c rj-track -l cancel-never -d 'Cancel (scancel) the tracked jobs that Slurm says can never start, pending with reason DependencyNeverSatisfied: one scancel per tick and cluster for all of them. They then end in CANCELLED with that reason in their record. Off by default: the job stays pending until someone cancels it or the dependency is changed (scontrol update Dependency=)'
complete -c rj-track -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rj-track -s V -l version -d 'Print version'
