# framewire: the two set-up commands are `make demo` and `make test`. Both install what is missing first.
.PHONY: demo test setup broker broker-stop bench bench-ingest bench-detect bench-pipeline

demo:
	scripts/demo.sh

test:
	scripts/test.sh

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
