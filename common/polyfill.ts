// libp2p 3 needs Promise.withResolvers, which Node 20 lacks; every entry point imports this first.
const P = Promise as unknown as { withResolvers?: unknown };
if (!P.withResolvers)
  P.withResolvers = <T>() => {
    let resolve!: (v: T) => void, reject!: (e: unknown) => void;
    const promise = new Promise<T>((a, b) => {
      resolve = a;
      reject = b;
    });
    return { promise, resolve, reject };
  };
export {};
