complete -c rj-status -l config -d 'Read Redis settings from this redis.json (default: $RJ_CONFIG, ./redis.json, ~/.config/rj/redis.json)' -r -F
complete -c rj-status -l url -d 'Redis URL (redis://, rediss://, unix://); overrides redis.json and REDIS_URL. Prefer REDIS_URL or redis.json for passwords: a command line is visible to every user' -r
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
complete -c rj-status -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rj-status -s V -l version -d 'Print version'
