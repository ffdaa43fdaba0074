.PHONY: install demo test bench

install:
	scripts/install

demo:
	scripts/demo

test:
	scripts/test
