import Foundation
import Testing

/// The default run path, as a separate process: start-up lines, refusals and graceful shutdown.
struct RunCommandTests {
    static func environment(dataDirectory: String, _ extra: [String: String] = [:]) -> [String: String] {
        var environment = [
            "PEAT_FORMATION_SECRET": "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4",
            "HOSTNAME": "peat-mesh-1",
            "PEAT_DATA_DIR": dataDirectory,
            "PEAT_DISCOVERY": "static",
            "PEAT_BIND_HOST": "127.0.0.1",
            "PEAT_SYNC_PORT": "0",  // tests run in parallel: any free ports
            "PEAT_BROKER_PORT": "0",
        ]
        environment.merge(extra) { _, new in new }
        return environment
    }

    static func temporaryDirectory() -> String {
        FileManager.default.temporaryDirectory.appendingPathComponent("peat-node-test-\(UUID().uuidString)").path
    }

    @Test(arguments: [(SIGTERM, "SIGTERM"), (SIGINT, "SIGINT")])
    func startsAndStopsGracefullyOnSignal(_ signal: Int32, _ name: String) throws {
        let dataDirectory = Self.temporaryDirectory() + "/nested/data"
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        let node = try NodeProcess(environment: Self.environment(dataDirectory: dataDirectory))
        let started = try node.waitForOutput(containing: "Broker listening")
        #expect(started.contains("Node identity ready node_id=peat-mesh-1 device_id=6249fce8bedd0145bde16f39d326a57c"))
        #expect(started.contains("Starting peat-mesh-node"))
        var isDirectory: ObjCBool = false
        #expect(FileManager.default.fileExists(atPath: dataDirectory, isDirectory: &isDirectory) && isDirectory.boolValue)
        let storeLine = started.split(separator: "\n").first { $0.contains("Document store opened") } ?? ""
        #expect(storeLine.contains("documents=0") && storeLine.contains("path=\(dataDirectory)/automerge"))
        #expect(FileManager.default.fileExists(atPath: dataDirectory + "/automerge/data.mdb"))

        node.signal(signal)
        let result = try node.finish()
        #expect(result.status == 0)
        let lines = result.stdoutLines
        #expect(lines.contains { $0.hasSuffix("Received \(name)") })
        #expect(lines.last?.hasSuffix("peat-mesh-node stopped") == true)
        #expect(!result.stdout.contains("\u{1B}["), "plain text: no ANSI colour")
        #expect(!result.stdout.lowercased().contains("error"), "a healthy run logs no error line")
        #expect(!result.stdout.contains("dGVzdC1mb3JtYXRpb24t"), "the secret never reaches the log")
    }

    @Test func jsonLogFormatWritesOneJSONObjectPerLine() throws {
        let dataDirectory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        let node = try NodeProcess(environment: Self.environment(dataDirectory: dataDirectory, ["PEAT_LOG_FORMAT": "json"]))
        try node.waitForOutput(containing: "Node identity ready")
        node.signal(SIGTERM)
        let result = try node.finish()
        #expect(result.status == 0)
        let objects = try result.stdoutLines.map { line in
            try #require(JSONSerialization.jsonObject(with: Data(line.utf8)) as? [String: Any])
        }
        #expect(objects.count >= 4)
        #expect(objects.allSatisfy { $0["timestamp"] is String && $0["level"] is String && $0["message"] is String })
        #expect(objects.contains { ($0["message"] as? String) == "Received SIGTERM" })
    }

    static let badValues: [(String, String)] = [
        ("PEAT_BROKER_PORT", "http"),
        ("PEAT_BROKER_PORT", "65536"),
        ("PEAT_BROKER_PORT", "-1"),
        ("PEAT_SYNC_PORT", "11204x"),
        ("PEAT_IROH_BIND_PORT", "0x2bcc"),
        ("PEAT_DISCOVERY", "consul"),
        ("PEAT_DISCOVERY", "MDNS "),
        ("PEAT_STATIC_PEERS", "peat-mesh-0@10.0.0.1"),
        ("PEAT_STATIC_PEERS", "::1:11204"),
        ("PEAT_BIND_HOST", "not-an-address"),
        ("PEAT_LOG_LEVEL", "verbose"),
        ("PEAT_LOG_FORMAT", "xml"),
        ("PEAT_COMPACTION_ENABLED", "maybe"),
        ("PEAT_COMPACTION_INTERVAL_SECS", "5m"),
        ("PEAT_COMPACTION_THRESHOLD_BYTES", "64KB"),
        ("PEAT_COMPACTION_COLLECTIONS", "beacons,../etc"),
        ("PEAT_RELAY_URLS", "relay.example.com"),
        ("PEAT_IROH_RELAY_URLS", "ftp://relay.example.com"),
    ]

    @Test(arguments: badValues)
    func refusesBadValueWithOneLineNamingTheVariable(_ variable: String, _ value: String) throws {
        let dataDirectory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        let result = try NodeProcess.run(environment: Self.environment(dataDirectory: dataDirectory, [variable: value]))
        #expect(result.status != 0)
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains(variable))
        #expect(result.stdout.isEmpty, "nothing starts before the configuration is accepted")
        #expect(!FileManager.default.fileExists(atPath: dataDirectory))
    }

    @Test func refusesDataDirectoryThatIsAFile() throws {
        let file = Self.temporaryDirectory()
        #expect(FileManager.default.createFile(atPath: file, contents: Data("x".utf8)))
        defer { try? FileManager.default.removeItem(atPath: file) }
        let result = try NodeProcess.run(environment: Self.environment(dataDirectory: file))
        #expect(result.status != 0)
        #expect(result.stderrLines.count == 1)
        #expect(result.stderr.contains("PEAT_DATA_DIR"))
    }

    @Test(arguments: [("PEAT_SYNC_PORT", "Sync transport listening"), ("PEAT_BROKER_PORT", "Broker listening")])
    func occupiedPortStopsTheNodeWithOneLine(_ variable: String, _ listeningLine: String) throws {
        let dataDirectory = Self.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: dataDirectory) }
        let first = try NodeProcess(environment: Self.environment(dataDirectory: dataDirectory))
        _ = try first.waitForOutput(containing: "Broker listening")
        let output = try first.waitForOutput(containing: listeningLine)
        let port = try #require(Self.port(in: output, line: listeningLine))
        let second = try NodeProcess.run(environment: Self.environment(dataDirectory: dataDirectory + "-2", [variable: "\(port)"]))
        try? FileManager.default.removeItem(atPath: dataDirectory + "-2")
        #expect(second.status != 0)
        #expect(second.stderrLines.count == 1)
        #expect(second.stderr.contains(variable))
        first.signal(SIGTERM)
        #expect(try first.finish().status == 0)
    }

    /// The port from the `Sync transport listening address=127.0.0.1:PORT` line.
    static func syncPort(in output: String) -> Int? {
        port(in: output, line: "Sync transport listening")
    }

    /// The port from the `Broker listening address=127.0.0.1:PORT` line.
    static func brokerPort(in output: String) -> Int? {
        port(in: output, line: "Broker listening")
    }

    static func port(in output: String, line marker: String) -> Int? {
        guard let line = output.split(separator: "\n").first(where: { $0.contains(marker) }),
            let field = line.split(separator: " ").first(where: { $0.hasPrefix("address=") }),
            let port = field.split(separator: ":").last
        else { return nil }
        return Int(port)
    }

    @Test func unknownArgumentIsAnError() throws {
        let result = try NodeProcess.run(["--no-such-flag"], environment: [:])
        #expect(result.status != 0)
        #expect(!result.stderr.isEmpty)
    }
}
