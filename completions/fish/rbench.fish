# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_rbench_global_optspecs
    string join \n h/help V/version
end

function __fish_rbench_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_rbench_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_rbench_using_subcommand
    set -l cmd (__fish_rbench_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c rbench -n "__fish_rbench_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rbench -n "__fish_rbench_needs_command" -s V -l version -d 'Print version'
complete -c rbench -n "__fish_rbench_needs_command" -f -a "wrap" -d 'Run the system\'s redis-benchmark (--csv) against the server and record its results'
complete -c rbench -n "__fish_rbench_needs_command" -f -a "run" -d 'Drive load with the native engine: raw sockets, HdrHistogram latencies'
complete -c rbench -n "__fish_rbench_needs_command" -f -a "compare" -d 'Compare result files: throughput and latency with ratios against the first file'
complete -c rbench -n "__fish_rbench_needs_command" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -l config -d 'Read Redis settings from this redis.json (default: $RJ_CONFIG, ./redis.json, ~/.config/rj/redis.json)' -r -F
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -l url -d 'Redis URL (redis://, rediss://, unix://, redis+sentinel://h:p,h:p/MASTER); overrides redis.json and REDIS_URL. Prefer REDIS_URL or redis.json for passwords: a command line is visible to every user' -r
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -l program -d 'The benchmark program to run (default: redis-benchmark, or valkey-benchmark when only that one is on PATH)' -r -F
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -s t -l tests -d 'Tests to run, comma-separated (run: set, get, del, exists, incr; default set,get. wrap: redis-benchmark\'s names; default all of its tests)' -r
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -s n -l requests -d 'Requests per test (default 100000; run: unlimited with --duration)' -r
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -s c -l clients -d 'Parallel connections' -r
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -s d -l value-size -d 'Bytes in each SET value (run: also a range, 100-1000, or a weighted list, 100:8,1000:2)' -r
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -s P -l pipeline -d 'Requests (run: units of --mode) in flight per connection' -r
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -l format -d 'Output form (default: human, or json with --output)' -r -f -a "human\t'An aligned table for people'
json\t'The result document: {timestamp, config, results: {tests: …}, raw_output}'
csv\t'One line per test, with a header line'"
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -s o -l output -d 'Write the result to FILE (the human table still goes to stdout unless -q)' -r -F
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -l keyspace -d 'Random keys out of N (redis-benchmark -r)' -r
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -l timeout -d 'Kill redis-benchmark and fail (exit 69) when it runs longer than this (it waits for ever on a stopped or blocked server)' -r
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -s q -l quiet -d 'Print only errors'
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -s v -l verbose -d 'Say more on stderr (where the config came from, what is done)'
complete -c rbench -n "__fish_rbench_using_subcommand wrap" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rbench -n "__fish_rbench_using_subcommand run" -l config -d 'Read Redis settings from this redis.json (default: $RJ_CONFIG, ./redis.json, ~/.config/rj/redis.json)' -r -F
complete -c rbench -n "__fish_rbench_using_subcommand run" -l url -d 'Redis URL (redis://, rediss://, unix://, redis+sentinel://h:p,h:p/MASTER); overrides redis.json and REDIS_URL. Prefer REDIS_URL or redis.json for passwords: a command line is visible to every user' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -s t -l tests -d 'Tests to run, comma-separated (run: set, get, del, exists, incr; default set,get. wrap: redis-benchmark\'s names; default all of its tests)' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -s n -l requests -d 'Requests per test (default 100000; run: unlimited with --duration)' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -s c -l clients -d 'Parallel connections' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -s d -l value-size -d 'Bytes in each SET value (run: also a range, 100-1000, or a weighted list, 100:8,1000:2)' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -s P -l pipeline -d 'Requests (run: units of --mode) in flight per connection' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l format -d 'Output form (default: human, or json with --output)' -r -f -a "human\t'An aligned table for people'
json\t'The result document: {timestamp, config, results: {tests: …}, raw_output}'
csv\t'One line per test, with a header line'"
complete -c rbench -n "__fish_rbench_using_subcommand run" -s o -l output -d 'Write the result to FILE (the human table still goes to stdout unless -q)' -r -F
complete -c rbench -n "__fish_rbench_using_subcommand run" -l ratio -d 'A mix of operations in one test, as OP:WEIGHT pairs (set:1,get:9; cmd1, cmd2, … are the --command templates); replaces --tests' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l command -d 'An arbitrary command, as \'SET __key__ __data__\': __key__ is a key of the key range, __data__ a value of -d bytes. Repeatable; alone each is a test of its own, in --ratio they are cmd1, cmd2, …' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l duration -d 'Run each test this long (30s, 2m); with --requests, whichever ends first' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l mode -d 'direct: one command per operation; batched: --batch operations per round trip' -r -f -a "direct\t'One command per operation'
batched\t'--batch operations per round trip, in multi-key commands (MSET, MGET, DEL, EXISTS)'"
complete -c rbench -n "__fish_rbench_using_subcommand run" -l batch -d 'Operations per round trip in --mode batched' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l rate -d 'Open loop: start R operations per second whatever the latency; latencies count from each operation\'s intended start (coordinated-omission correction)' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l keyspace -d 'Keys are chosen among N (default 100000), numbered from --key-min' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l key-min -d 'The first key number of the range' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l key-max -d 'The last key number of the range (instead of --keyspace)' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l key-dist -d 'How keys are chosen among the range' -r -f -a "uniform\t'Every key equally likely'
sequential\t'One key after the other, wrapping around: a SET run fills the range'
gaussian\t'Normal around the middle of the range (--key-stddev)'
zipf\t'Zipf: few keys take most requests (--zipf-exponent)'"
complete -c rbench -n "__fish_rbench_using_subcommand run" -l key-stddev -d '--key-dist gaussian: the standard deviation, in keys (default: a sixth of the range)' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l zipf-exponent -d '--key-dist zipf: the exponent s (key k weighs 1/(k+1)^s)' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l ttl -d 'SET\'s keys expire after this many seconds (SET … EX)' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l runs -d 'Run each test N times; its figures are the median run\'s (by REQ/S), with the min and max beside them and every run in the JSON' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l hdr-out -d 'Write each test\'s latencies as an HdrHistogram interval log (PREFIX_TEST.hlog, one histogram a second) and percentile distribution (PREFIX_TEST.hgrm), in milliseconds' -r -F
complete -c rbench -n "__fish_rbench_using_subcommand run" -l key-prefix -d 'Prefix of every key rbench touches (INCR uses PREFIXcounter:…)' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -l threads -d 'Event-loop threads (connections are shared among them). One is enough for a server on the same machine; more for a remote server with many clients' -r
complete -c rbench -n "__fish_rbench_using_subcommand run" -s q -l quiet -d 'Print only errors'
complete -c rbench -n "__fish_rbench_using_subcommand run" -s v -l verbose -d 'Say more on stderr (where the config came from, what is done)'
complete -c rbench -n "__fish_rbench_using_subcommand run" -l cluster -d 'The server is a Redis Cluster node: take the slot map from its CLUSTER SLOTS, open -c connections to every master, and send each key to the master of its slot (MOVED replies count as errors). Implied when INFO says cluster_enabled:1; given, a server that is no Cluster node is an error'
complete -c rbench -n "__fish_rbench_using_subcommand run" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rbench -n "__fish_rbench_using_subcommand compare" -s t -l tests -d 'Only these tests (comma-separated)' -r
complete -c rbench -n "__fish_rbench_using_subcommand compare" -l format -r -f -a "human\t'An aligned table for people'
markdown\t'A Markdown table, for READMEs and issues'
csv\t'One line per test and file, with a header line'
json\t'An array of rows'"
complete -c rbench -n "__fish_rbench_using_subcommand compare" -l plot -d 'Draw the latency percentile curves, one per file and test, into FILE.svg or FILE.png' -r -F
complete -c rbench -n "__fish_rbench_using_subcommand compare" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c rbench -n "__fish_rbench_using_subcommand help; and not __fish_seen_subcommand_from wrap run compare help" -f -a "wrap" -d 'Run the system\'s redis-benchmark (--csv) against the server and record its results'
complete -c rbench -n "__fish_rbench_using_subcommand help; and not __fish_seen_subcommand_from wrap run compare help" -f -a "run" -d 'Drive load with the native engine: raw sockets, HdrHistogram latencies'
complete -c rbench -n "__fish_rbench_using_subcommand help; and not __fish_seen_subcommand_from wrap run compare help" -f -a "compare" -d 'Compare result files: throughput and latency with ratios against the first file'
complete -c rbench -n "__fish_rbench_using_subcommand help; and not __fish_seen_subcommand_from wrap run compare help" -f -a "help" -d 'Print this message or the help of the given subcommand(s)'
