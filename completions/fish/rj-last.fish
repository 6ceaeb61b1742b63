complete -c rj-last -l config -d 'Read Redis settings from this redis.json (default: $RJ_CONFIG, ./redis.json, ~/.config/rj/redis.json)' -r -F
complete -c rj-last -l url -d 'Redis URL (redis://, rediss://, unix://, redis+sentinel://h:p,h:p/MASTER); overrides redis.json and REDIS_URL. Prefer REDIS_URL or redis.json for passwords: a command line is visible to every user' -r
complete -c rj-last -l tag -d 'Experiment tag (default: $JOB_TAG, $job_tag, "job_tag" in redis.json)' -r
complete -c rj-last -l job -d 'This job instead of the last one: 4238610, or 4238610_3 for one array task. Repeatable: more than one makes the table of those jobs' -r
complete -c rj-last -l state -d 'The jobs of these sets, as one table: ALL, PENDING_AND_RUNNING (or PENDING, RUNNING), COMPLETED, FAILED, TIMEOUT, CANCELLED; repeatable' -r
complete -c rj-last -l plot -d 'Plot the key NAME of the chosen jobs against their job IDs into FILE (.svg or .png), one colour per set: how a result changes from job to job. Values that are not numbers are left out; nothing goes to stdout' -r
complete -c rj-last -l format -d 'Output form; `human` and `plain` are the original `Key:`/`Value:`/`---` lines' -r -f -a "human\t'Aligned text for people'
plain\t'One value per line, for xargs and `while read`'
json\t'One JSON document'
csv\t'Comma-separated, with a header line'
tsv\t'Tab-separated, with a header line'"
complete -c rj-last -s q -l quiet -d 'Print only errors'
complete -c rj-last -s v -l verbose -d 'Say more on stderr (where the config came from, what is done)'
complete -c rj-last -l all -d 'Every job of the tag (TAG_ALL), as one table'
complete -c rj-last -l wide -d 'One row per job (per array task) and one column per key name, for a spreadsheet or pandas; with csv, tsv, json or human'
complete -c rj-last -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rj-last -s V -l version -d 'Print version'
