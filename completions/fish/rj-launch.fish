complete -c rj-launch -l config -d 'Read Redis settings from this redis.json (default: $RJ_CONFIG, ./redis.json, ~/.config/rj/redis.json)' -r -F
complete -c rj-launch -l url -d 'Redis URL (redis://, rediss://, unix://, redis+sentinel://h:p,h:p/MASTER); overrides redis.json and REDIS_URL. Prefer REDIS_URL or redis.json for passwords: a command line is visible to every user' -r
complete -c rj-launch -l tag -d 'Experiment tag (default: $JOB_TAG, $job_tag, "job_tag" in redis.json)' -r
complete -c rj-launch -l record -d 'Record job IDs submitted some other way instead of running sbatch; `-` reads IDs (`123`, `123_4`, `123;cluster`) from stdin, separated by white space' -r
complete -c rj-launch -l events-max -d 'Append one `recorded` entry per newly recorded job to the stream TAG_EVENTS (fields job, set, state, exit_code, tracked_at, tracker), in the transaction that records it, trimmed to about N entries (XADD MAXLEN ~ N); 0 writes no event. Jobs replayed from the spool get theirs too' -r
complete -c rj-launch -s q -l quiet -d 'Print only errors'
complete -c rj-launch -s v -l verbose -d 'Say more on stderr (where the config came from, what is done)'
complete -c rj-launch -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rj-launch -s V -l version -d 'Print version'
