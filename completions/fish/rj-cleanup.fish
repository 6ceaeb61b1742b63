complete -c rj-cleanup -l config -d 'Read Redis settings from this redis.json (default: $RJ_CONFIG, ./redis.json, ~/.config/rj/redis.json)' -r -F
complete -c rj-cleanup -l url -d 'Redis URL (redis://, rediss://, unix://, redis+sentinel://h:p,h:p/MASTER); overrides redis.json and REDIS_URL. Prefer REDIS_URL or redis.json for passwords: a command line is visible to every user' -r
complete -c rj-cleanup -l tag -d 'Experiment tag (default: $JOB_TAG, $job_tag, "job_tag" in redis.json)' -r
complete -c rj-cleanup -s q -l quiet -d 'Print only errors'
complete -c rj-cleanup -s v -l verbose -d 'Say more on stderr (where the config came from, what is done)'
complete -c rj-cleanup -l keys -d 'Also delete the jobs\' data keys TAG-<jobid>:* and rj-put\'s markers of replayed spool files, TAG_REPLAYED:*'
complete -c rj-cleanup -l records -d 'Also delete rj\'s job records TAG_JOB:<jobid>, of jobs in TAG_ALL or not, the event stream TAG_EVENTS and rj-track\'s TAG_TRACKER:unknown and TAG_TRACKER:tick'
complete -c rj-cleanup -s n -l dry-run -d 'List what would be deleted, one key per line, and delete nothing'
complete -c rj-cleanup -s y -l yes -d 'Do not ask before deleting job data'
complete -c rj-cleanup -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rj-cleanup -s V -l version -d 'Print version'
