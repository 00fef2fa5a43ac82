# Thin dispatch over CMake presets and scripts/. `make run` and `make test` install what
# is missing first (scripts/install-deps.sh), so on a fresh Debian 12 they do all set-up.
JOBS ?= $(shell nproc)
CONFIG ?= config/flowd.yaml
# Where `make run` keeps its write-ahead log and checkpoints (git ignores it).
DATA_DIR ?= data

.PHONY: deps build run test asan tsan tidy format format-check layering bench load clean fuzz screenshot

deps:
	@scripts/install-deps.sh

build: deps
	cmake --preset release && cmake --build --preset release -j $(JOBS)

run: build
	./build/release/flowd --config $(CONFIG) --data-dir $(DATA_DIR)

test: deps
	scripts/test.sh

asan: deps
	cmake --preset asan && cmake --build --preset asan -j $(JOBS) && ctest --preset asan

tsan: deps
	cmake --preset tsan && cmake --build --preset tsan -j $(JOBS) --target flowd_concurrency_tests && ctest --preset tsan

tidy: deps
	cmake --preset tidy && cmake --build --preset tidy -j $(JOBS)

format:
	clang-format -i $$(git ls-files '*.cpp' '*.hpp')

format-check:
	clang-format --dry-run --Werror $$(git ls-files '*.cpp' '*.hpp')

layering:
	@scripts/layering.sh

# libFuzzer harnesses (fuzz/, clang, ASan+UBSan), each for FUZZ_SECONDS (default 60).
fuzz: deps
	FUZZ_SECONDS=$(or $(FUZZ_SECONDS),60) JOBS=$(JOBS) scripts/fuzz.sh

bench: deps
	scripts/bench.sh

# docs/console.png, taken by the browser test (tests/browser) against the release build.
screenshot: build
	/usr/bin/python3 tests/browser/console_test.py build/release/flowd --out build/browser --screenshot docs/console.png

clean:
	rm -rf build
