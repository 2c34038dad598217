import Foundation
import Testing

@testable import PeatStorage

/// Kills a writer process with SIGKILL at random points and checks every acknowledged write.
@Suite(.timeLimit(.minutes(3)))
struct CrashSafetyTests {
    /// Must match `crashTestValue` in Sources/PeatStorageCrashWriter/main.swift.
    static func expectedValue(_ n: Int) -> [UInt8] {
        (0..<(64 + n % 1000)).map { UInt8(truncatingIfNeeded: n &* 31 &+ $0) }
    }

    static var writerURL: URL {
        let testBinary = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
        var directory = URL(fileURLWithPath: testBinary).deletingLastPathComponent()
        while !FileManager.default.isExecutableFile(atPath: directory.appendingPathComponent("PeatStorageCrashWriter").path),
            directory.pathComponents.count > 1
        {
            directory.deleteLastPathComponent()
        }
        return directory.appendingPathComponent("PeatStorageCrashWriter")
    }

    /// Starts the writer, waits for `acks` acknowledgements, kills it; returns the last acknowledged number.
    static func runWriter(path: String, start: Int, acks: Int) throws -> Int {
        let process = Process()
        process.executableURL = writerURL
        process.arguments = [path, String(start)]
        let output = Pipe()
        process.standardOutput = output
        process.standardError = FileHandle.nullDevice
        try process.run()
        var lastAck = start - 1
        var buffer = Data()
        var seen = 0
        let handle = output.fileHandleForReading
        while seen < acks {
            let chunk = handle.availableData
            guard !chunk.isEmpty else { break }  // the writer died on its own: a failure below
            buffer.append(chunk)
            while let newline = buffer.firstIndex(of: UInt8(ascii: "\n")) {
                let line = String(decoding: buffer[buffer.startIndex..<newline], as: UTF8.self)
                buffer.removeSubrange(buffer.startIndex...newline)
                if line.hasPrefix("ack "), let number = Int(line.dropFirst(4)) {
                    lastAck = number
                    seen += 1
                }
            }
        }
        kill(process.processIdentifier, SIGKILL)
        process.waitUntilExit()
        #expect(process.terminationReason == .uncaughtSignal, "the writer must still have been running when killed")
        return lastAck
    }

    @Test func everyAcknowledgedWriteSurvivesSIGKILL() throws {
        let directory = StoreDirectory()
        defer { directory.remove() }
        var generator = SystemRandomNumberGenerator()
        var acknowledged = -1
        var next = 0
        for round in 0..<24 {
            let acks = Int.random(in: 1...(round % 4 == 0 ? 400 : 60), using: &generator)
            acknowledged = try Self.runWriter(path: directory.path, start: next, acks: acks)
            #expect(acknowledged >= next, "round \(round): the writer acknowledged nothing")

            // Reopen after the unclean stop: every acknowledged document is present and intact,
            // and nothing in the store is corrupt (unacknowledged writes are either whole or absent).
            let store = try LMDBDocumentStore(path: directory.path)
            let documents = try store.scan("crash")
            store.close()
            var byNumber: [Int: [UInt8]] = [:]
            for document in documents {
                let number = try #require(Int(document.key.id.dropFirst(4)))
                byNumber[number] = document.value
            }
            for number in 0...acknowledged {
                guard byNumber[number] == Self.expectedValue(number) else {
                    Issue.record("round \(round): acknowledged document \(number) is missing or damaged")
                    return
                }
            }
            for (number, value) in byNumber where number > acknowledged {
                #expect(value == Self.expectedValue(number), "round \(round): unacknowledged document \(number) is damaged")
            }
            next = (byNumber.keys.max() ?? acknowledged) + 1
        }
        #expect(acknowledged > 24)
    }
}
