complete -c rj-wait -l config -d 'Read Redis settings from this redis.json (default: $RJ_CONFIG, ./redis.json, ~/.config/rj/redis.json)' -r -F
complete -c rj-wait -l url -d 'Redis URL (redis://, rediss://, unix://, redis+sentinel://h:p,h:p/MASTER); overrides redis.json and REDIS_URL. Prefer REDIS_URL or redis.json for passwords: a command line is visible to every user' -r
complete -c rj-wait -l tag -d 'Experiment tag (default: $JOB_TAG, $job_tag, "job_tag" in redis.json)' -r
complete -c rj-wait -l timeout -d 'Give up after this long (e.g. 30m, 2h, 1d), with exit status 124' -r
complete -c rj-wait -l format -d 'Form of the line printed per job as it finishes' -r -f -a "human\t'`TAG ID SET EXIT_CODE STATE`, as rj-track prints a move'
plain\t'The job ID alone'
json\t'One JSON object per line (JSON Lines)'"
complete -c rj-wait -s q -l quiet -d 'Print only errors'
complete -c rj-wait -s v -l verbose -d 'Say more on stderr (where the config came from, what is done)'
complete -c rj-wait -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rj-wait -s V -l version -d 'Print version'
