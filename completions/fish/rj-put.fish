complete -c rj-put -l config -d 'Read Redis settings from this redis.json (default: $RJ_CONFIG, ./redis.json, ~/.config/rj/redis.json)' -r -F
complete -c rj-put -l url -d 'Redis URL (redis://, rediss://, unix://, redis+sentinel://h:p,h:p/MASTER); overrides redis.json and REDIS_URL. Prefer REDIS_URL or redis.json for passwords: a command line is visible to every user' -r
complete -c rj-put -l tag -d 'Experiment tag (default: $JOB_TAG, $job_tag, "job_tag" in redis.json)' -r
complete -c rj-put -l job -d 'Write the keys of this job (4238610, or 4238610_3 for an array task) instead of the job rj-put runs in: from a login node, or for another job of the tag' -r
complete -c rj-put -l retry-for -d 'How long to retry while Redis cannot be reached before leaving the writes in the spool (0, 30s, 5m); with --lines, counted from the first failure and spent at the end of input. A site or a job script can set it once in the environment' -r
complete -c rj-put -s q -l quiet -d 'Print only errors'
complete -c rj-put -s v -l verbose -d 'Say more on stderr (where the config came from, what is done)'
complete -c rj-put -l hash -d 'HSET: the VALUEs are FIELD=VALUE pairs, split at the first `=`'
complete -c rj-put -l push -d 'RPUSH: append the VALUEs to the list NAME, in order'
complete -c rj-put -l lines -d 'RPUSH every line of stdin, without its newline, to the list NAME, as the lines come'
complete -c rj-put -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rj-put -s V -l version -d 'Print version'
