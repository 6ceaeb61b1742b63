complete -c rj-status -l config -d 'Read Redis settings from this redis.json (default: $RJ_CONFIG, ./redis.json, ~/.config/rj/redis.json)' -r -F
complete -c rj-status -l url -d 'Redis URL (redis://, rediss://, unix://, redis+sentinel://h:p,h:p/MASTER); overrides redis.json and REDIS_URL. Prefer REDIS_URL or redis.json for passwords: a command line is visible to every user' -r
complete -c rj-status -l tag -d 'Experiment tag (default: $JOB_TAG, $job_tag, "job_tag" in redis.json)' -r
complete -c rj-status -l state -d 'Only these sets: ALL, PENDING_AND_RUNNING (or PENDING, RUNNING), COMPLETED, FAILED, TIMEOUT, CANCELLED; repeatable. Sets are always listed in this order, whatever the order of the options (so `--count --format plain` gives one number per line in this order)' -r
complete -c rj-status -l format -d 'Output form; `plain` prints one job ID per line (or one count per line with --count)' -r -f -a "human\t'Aligned text for people'
plain\t'One value per line, for xargs and `while read`'
json\t'One JSON document'
csv\t'Comma-separated, with a header line'
tsv\t'Tab-separated, with a header line'"
complete -c rj-status -s q -l quiet -d 'Print only errors'
complete -c rj-status -s v -l verbose -d 'Say more on stderr (where the config came from, what is done)'
complete -c rj-status -l count -d 'Only the counts (SCARD; no IDs are read)'
complete -c rj-status -s l -l long -d 'One row per job, joined with its record: state, exit code, elapsed, nodes, …'
complete -c rj-status -l check -d 'Check the one-set-per-job rule instead of listing: one line per violation on stdout (`123: in TAG_COMPLETED but not in TAG_ALL`, `124: in TAG_PENDING_AND_RUNNING and TAG_FAILED`, `125: in TAG_ALL but in no state set`), in numeric order. The six sets are read under WATCH and confirmed by an EXEC, so the answer is one instant\'s truth even while rj-track moves jobs (the read is retried when they changed; after 10 tries, exit 75). `--format json`: one document {tag, consistent, changes, violations}, each violation {job_id, kind, sets, message} with kind not_in_all, several_sets or no_set; csv/tsv: rows job_id,kind,sets,message; plain: the IDs concerned. Exit 0 when the rule holds (a note on stderr says so), 65 when any ID breaks it'
complete -c rj-status -l repair -d 'With --check: repair what follows from the data without guessing, in one MULTI/EXEC under WATCH (redone when rj-track moved a job meanwhile, so no move is undone): an ID in a state set but not in TAG_ALL is added to TAG_ALL; an ID in TAG_PENDING_AND_RUNNING and a final set is removed from TAG_PENDING_AND_RUNNING; a TAG_ALL member in no state set is added to the final set its record TAG_JOB:<id> names when rj-track wrote one at a move, else to TAG_PENDING_AND_RUNNING, so that rj-track judges it from Slurm (and, if Slurm no longer knows the job, moves it to TAG_FAILED as LOST after --lost-after). An ID in two final sets is reported, not changed: see `sacct -j ID` and SREM it from the wrong set. Prints one line per change (json/csv/tsv: kind added or removed), then what is left; exit 0 when the sets are consistent afterwards, else 65. The ACL user needs +watch +multi +exec +sadd +srem +hmget besides +sscan'
complete -c rj-status -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rj-status -s V -l version -d 'Print version'
