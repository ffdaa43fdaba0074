.PHONY: install demo test bench bench-quick

# make bench SAVE=--save: store the results in bench/results/ (default: work/bench/)
SAVE ?=

install:
	scripts/install

demo:
	scripts/demo

test:
	scripts/test

bench:
	scripts/install
	.venv/bin/python bench/export_bench.py --tasks 200 $(SAVE)
	.venv/bin/python bench/serving_bench.py $(SAVE)
	.venv/bin/python bench/client_bench.py $(SAVE)
	.venv/bin/python bench/client_startup.py $(SAVE)
	.venv/bin/python bench/compare.py $(SAVE)
	.venv/bin/python bench/overhead.py $(SAVE)

bench-quick:
	scripts/install
	.venv/bin/python bench/compare.py --quick
