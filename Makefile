# framewire: the two set-up commands are `make demo` and `make test`. Both install what is missing first.
.PHONY: demo test test-quick setup broker broker-stop bench bench-ingest bench-detect bench-pipeline

demo:
	scripts/demo.sh

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

bench: bench-ingest bench-detect bench-pipeline

bench-ingest:
	bench/ingest.sh

bench-detect:
	bench/detect.sh

bench-pipeline:
	bench/pipeline.sh
