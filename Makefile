# framewire: the two set-up commands are `make demo` and `make test`. Both install what is missing first.
.PHONY: demo demo-live test test-quick setup broker broker-stop bench bench-ingest bench-detect bench-pipeline bench-web bench-motion bench-overload

demo:
	scripts/demo.sh

# The pipeline kept running on the sample clip looped as a live camera, with the store and the web view, until Ctrl-C.
demo-live:
	scripts/demo-live.sh

test:
	scripts/test.sh

# Everything but the slow_* end-to-end tests (outages, kills, real-time clips): a few minutes.
test-quick:
	FRAMEWIRE_TEST_SKIP=slow_ scripts/test.sh

setup:
	scripts/setup.sh

broker:
	scripts/broker.sh start 9092

broker-stop:
	scripts/broker.sh stop

bench: bench-ingest bench-detect bench-pipeline bench-motion bench-overload bench-web

bench-ingest:
	bench/ingest.sh

bench-detect:
	bench/detect.sh

bench-pipeline:
	bench/pipeline.sh

bench-motion:
	bench/motion.sh

bench-overload:
	bench/overload.sh

bench-web:
	bench/web.sh
