import CPeatFuzz
import Foundation

/// The entry point every fuzz target's `main.swift` calls.
public enum FuzzMain {
    /// The environment variable that makes a target write its seed corpus instead of fuzzing.
    public static let seedsVariable = "PEAT_FUZZ_WRITE_SEEDS"

    /// Writes `seeds()` into the directory `PEAT_FUZZ_WRITE_SEEDS` names (one file per seed, named by
    /// it) when that is set; otherwise runs libFuzzer with the process arguments. Never returns.
    public static func run(seeds: () throws -> [(name: String, bytes: [UInt8])]) -> Never {
        if let directory = ProcessInfo.processInfo.environment[seedsVariable] {
            do {
                try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
                let all = try seeds()
                for seed in all {
                    try Data(seed.bytes).write(to: URL(fileURLWithPath: directory).appendingPathComponent(seed.name))
                }
                print("\(all.count) seeds in \(directory)")
                exit(0)
            } catch {
                print("cannot write the seeds: \(error)")
                exit(1)
            }
        }
        peat_fuzz_run(CommandLine.argc, CommandLine.unsafeArgv)
    }

    /// The bytes libFuzzer hands `LLVMFuzzerTestOneInput`.
    public static func bytes(_ data: UnsafePointer<UInt8>?, _ size: Int) -> [UInt8] {
        guard let data, size > 0 else { return [] }
        return Array(UnsafeBufferPointer(start: data, count: size))
    }
}

/// Stops the run with a crash libFuzzer records when an invariant of the code under test breaks.
public func fuzzInvariant(_ condition: Bool, _ message: @autoclosure () -> String, file: StaticString = #fileID, line: UInt = #line) {
    if !condition { fatalError("invariant broken: \(message())", file: file, line: line) }
}
