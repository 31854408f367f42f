// Algostore's Node.js runtime: the same lines the Python ADK speaks (API.md).
// src/<name>.js exports `apply(input, state)` (or is that function) and may export an
// async `load()` whose result is passed to apply as `state`.
"use strict";
const fs = require("fs");
const path = require("path");
const readline = require("readline");

const FIFO = "/tmp/algoout";

function format(result) {
  if (Buffer.isBuffer(result) || result instanceof Uint8Array) {
    return { result: Buffer.from(result).toString("base64"), metadata: { content_type: "binary" } };
  }
  if (typeof result === "string") {
    return { result, metadata: { content_type: "text" } };
  }
  return { result: result === undefined ? null : result, metadata: { content_type: "json" } };
}

function failure(error, errorType) {
  return {
    error: {
      message: String((error && error.message) || error),
      stacktrace: String((error && error.stack) || ""),
      error_type: (error && error.error_type) || errorType,
    },
  };
}

async function main() {
  let mod = null;
  let state;
  let loadError = null;
  try {
    mod = require(path.resolve(process.argv[2]));
    if (mod && typeof mod.load === "function") {
      state = await mod.load();
    }
  } catch (error) {
    loadError = error;
  }
  process.stdout.write("PIPE_INIT_COMPLETE\n");
  const lines = readline.createInterface({ input: process.stdin, crlfDelay: Infinity });
  for await (const line of lines) {
    let response;
    try {
      if (loadError) {
        response = failure(loadError, "LoadingError");
      } else {
        const request = JSON.parse(line);
        const data = request.content_type === "binary" ? Buffer.from(request.data, "base64") : request.data;
        const apply = typeof mod === "function" ? mod : mod.apply;
        response = format(await apply(data, state));
      }
    } catch (error) {
      response = failure(error, "AlgorithmError");
    }
    fs.writeFileSync(FIFO, JSON.stringify(response) + "\n");
  }
}

main();
