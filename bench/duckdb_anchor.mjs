// The DuckDB anchor of `make bench`'s query figures (scripts/bench-queries.sh): one thread,
// an in-memory table of the same rows flowd holds (read from flowd-querybench's CSV), the
// same questions. Run pinned to flowd's core; reads one command a line on stdin,
// "NAME REPEAT", runs that query REPEAT times, and answers one line
// "RESULT name=NAME median_ms=... min_ms=... max_ms=... rows=...". Each time covers the
// query and reading every row of its result into JavaScript values.
//
//   node duckdb_anchor.mjs FILE.csv   (from a folder whose node_modules has @duckdb/node-api)
import { createInterface } from 'node:readline';
import { DuckDBInstance } from '@duckdb/node-api';

const queries = {
  top_src: `SELECT src_app, sum(bytes_tx) AS tx, sum(bytes_rx) AS rx FROM flows
            GROUP BY src_app ORDER BY tx + rx DESC, src_app LIMIT 10`,
  top_key: `SELECT src_app, dest_app, vpc_id, sum(bytes_tx) AS tx, sum(bytes_rx) AS rx
            FROM flows GROUP BY src_app, dest_app, vpc_id
            ORDER BY tx + rx DESC, src_app, dest_app, vpc_id LIMIT 10`,
  hour5: `SELECT * FROM flows WHERE hour = 5 ORDER BY src_app, dest_app, vpc_id`,
};

const instance = await DuckDBInstance.create(':memory:', { threads: '1' });
const conn = await instance.connect();
await conn.run(`CREATE TABLE flows AS SELECT * FROM read_csv('${process.argv[2]}', header = true,
  columns = {'src_app': 'VARCHAR', 'dest_app': 'VARCHAR', 'vpc_id': 'VARCHAR',
             'bytes_tx': 'UBIGINT', 'bytes_rx': 'UBIGINT', 'hour': 'UINTEGER'})`);
const count = await conn.runAndReadAll('SELECT count(*) FROM flows');
console.log(`READY rows=${count.getRows()[0][0]}`);

for await (const line of createInterface({ input: process.stdin })) {
  const [name, repeat] = line.trim().split(/\s+/);
  if (!queries[name]) {
    console.log(`ERROR unknown query ${name}`);
    continue;
  }
  const times = [];
  let rows = 0;
  for (let i = 0; i < Number(repeat || 1); ++i) {
    const t0 = performance.now();
    const result = await conn.runAndReadAll(queries[name]);
    rows = result.getRows().length;
    times.push(performance.now() - t0);
  }
  times.sort((a, b) => a - b);
  const f = (x) => x.toFixed(3);
  console.log(`RESULT name=${name} median_ms=${f(times[times.length >> 1])} ` +
              `min_ms=${f(times[0])} max_ms=${f(times[times.length - 1])} rows=${rows}`);
}
