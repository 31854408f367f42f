// A JavaScript algorithm: load() once, apply() per call.
exports.load = async () => ({ greeting: "Hello" });

exports.apply = async (input, state) => {
  if (Buffer.isBuffer(input)) return Buffer.from(input).reverse();
  if (typeof input === "string") return `${state.greeting}, ${input}!`;
  if (input && input.action === "raise") throw new Error("js kaput");
  if (input && input.action === "print") { console.log(input.text); return "printed"; }
  return { echoed: input };
};
