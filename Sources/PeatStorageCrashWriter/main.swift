import PeatStorage

// A writer for PeatStorage's crash test (not part of the product): opens an LMDBDocumentStore and
// writes documents `crash/doc-<n>` in batches forever, printing `ack <n>` after each batch is
// acknowledged (apply returned). The test kills it with SIGKILL at random points and checks that
// every acknowledged document is present and intact after reopening.
#if canImport(Glibc)
import Glibc
#endif

/// The value every writer and checker agrees on for document `n`.
func report(_ text: String, to descriptor: Int32) {
    _ = text.withCString { write(descriptor, $0, strlen($0)) }
}

func crashTestValue(_ n: Int) -> [UInt8] {
    (0..<(64 + n % 1000)).map { UInt8(truncatingIfNeeded: n &* 31 &+ $0) }
}

let arguments = CommandLine.arguments
guard arguments.count == 3, let start = Int(arguments[2]) else {
    report("usage: PeatStorageCrashWriter <store directory> <first document number>\n", to: STDERR_FILENO)
    exit(2)
}
do {
    let store = try LMDBDocumentStore(path: arguments[1])
    var next = start
    var generator = SystemRandomNumberGenerator()
    while true {
        let batch = Int.random(in: 1...8, using: &generator)
        let operations = try (next..<(next + batch)).map { n in
            WriteOperation.put(try DocumentKey(collection: "crash", id: "doc-\(n)"), crashTestValue(n))
        }
        try store.apply(operations, origin: .local)
        next += batch
        report("ack \(next - 1)\n", to: STDOUT_FILENO)
    }
} catch {
    report("crash writer failed: \(error)\n", to: STDERR_FILENO)
    exit(1)
}
