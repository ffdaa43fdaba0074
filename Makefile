.PHONY: install demo test bench bench-quick

install:
	scripts/install

demo:
	scripts/demo

test:
	scripts/test

bench:
	scripts/install
	.venv/bin/python bench/export_bench.py --tasks 200
	.venv/bin/python bench/serving_bench.py
	.venv/bin/python bench/client_bench.py
	.venv/bin/python bench/client_startup.py
	.venv/bin/python bench/compare.py
	.venv/bin/python bench/overhead.py

bench-quick:
	scripts/install
	.venv/bin/python bench/compare.py --quick
