import Foundation
import Testing

#if canImport(Glibc)
import Glibc
#endif

/// Two network namespaces joined by a veth pair: two hosts on one machine, multicast between them
/// and no traffic anywhere else. Needs root and iproute2 (CI has both).
struct TwoHosts: ~Copyable {
    let a: String
    let b: String
    let addressA: String
    let addressB: String

    init() throws {
        let suffix = String(UInt32.random(in: 0...0xFFFFF), radix: 16)
        a = "peatA\(suffix)"
        b = "peatB\(suffix)"
        // TEST-NET-2 (RFC 5737), never a private range; the pair's namespaces see no other network.
        addressA = "198.51.100.1"
        addressB = "198.51.100.2"
        let vethA = "pva\(suffix)"
        let vethB = "pvb\(suffix)"
        for command in [
            ["netns", "add", a], ["netns", "add", b],
            ["link", "add", vethA, "type", "veth", "peer", "name", vethB],
            ["link", "set", vethA, "netns", a], ["link", "set", vethB, "netns", b],
            ["-n", a, "addr", "add", "\(addressA)/24", "dev", vethA], ["-n", b, "addr", "add", "\(addressB)/24", "dev", vethB],
            ["-n", a, "link", "set", vethA, "up"], ["-n", b, "link", "set", vethB, "up"],
            ["-n", a, "link", "set", "lo", "up"], ["-n", b, "link", "set", "lo", "up"],
            ["-n", a, "route", "add", "224.0.0.0/4", "dev", vethA], ["-n", b, "route", "add", "224.0.0.0/4", "dev", vethB],
        ] {
            try Self.ip(command)
        }
    }

    deinit {
        _ = try? Self.ip(["netns", "del", a])
        _ = try? Self.ip(["netns", "del", b])
    }

    struct CommandFailed: Error, CustomStringConvertible {
        let description: String
    }

    static func ip(_ arguments: [String]) throws {
        let process = Process()
        process.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        process.arguments = arguments
        let errors = Pipe()
        process.standardError = errors
        try process.run()
        process.waitUntilExit()
        guard process.terminationStatus == 0 else {
            let message = String(decoding: errors.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
            throw CommandFailed(description: "ip \(arguments.joined(separator: " ")): \(message)")
        }
    }
}

/// mDNS discovery between nodes in two network namespaces, and with python-zeroconf. Creating
/// namespaces needs root: as another user the suite is skipped, saying so.
@Suite(.serialized, .timeLimit(.minutes(1)), .enabled(if: getuid() == 0, "needs root: it creates network namespaces for two mDNS hosts"))
struct MDNSDiscoveryTests {
    static func environment(_ name: String, _ address: String, _ dataDirectory: String) -> [String: String] {
        [
            "PEAT_FORMATION_SECRET": "dGVzdC1mb3JtYXRpb24tc2VjcmV0LTEyMzQ1Njc4", "HOSTNAME": name,
            "PEAT_DISCOVERY": "mdns", "PEAT_BIND_HOST": address, "PEAT_DATA_DIR": dataDirectory,
        ]
    }

    @Test func nodesFindEachOtherAndSeeAGoodbye() throws {
        let hosts = try TwoHosts()
        let directory = RunCommandTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let a = try NodeProcess(environment: Self.environment("node-a", hosts.addressA, directory + "/a"), namespace: hosts.a)
        let b = try NodeProcess(environment: Self.environment("node-b", hosts.addressB, directory + "/b"), namespace: hosts.b)
        let start = Date()
        try a.waitForOutput(containing: "Peer discovered peer=node-b addresses=[\(hosts.addressB):11204] source=mdns", timeout: 10)
        try b.waitForOutput(containing: "Peer discovered peer=node-a addresses=[\(hosts.addressA):11204] source=mdns", timeout: 10)
        #expect(Date().timeIntervalSince(start) < 10)
        b.signal(SIGTERM)
        let stopped = try b.finish()
        #expect(stopped.status == 0, "node-b stopped with \(stopped.status):\n\(stopped.stdout)\n\(stopped.stderr)")
        // node-b said goodbye (TTL 0): node-a drops it at once, not after the 120 s TTL.
        try a.waitForOutput(containing: "Peer lost peer=node-b", timeout: 10)
        a.signal(SIGTERM)
        #expect(try a.finish().status == 0)
    }

    @Test func interoperatesWithPythonZeroconfBothWays() throws {
        let hosts = try TwoHosts()
        let directory = RunCommandTests.temporaryDirectory()
        defer { try? FileManager.default.removeItem(atPath: directory) }
        let node = try NodeProcess(environment: Self.environment("node-a", hosts.addressA, directory), namespace: hosts.a)
        try node.waitForOutput(containing: "mDNS discovery started", timeout: 10)

        let script = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("scripts/zeroconf_peer.py").path
        let python = Process()
        python.executableURL = URL(fileURLWithPath: "/usr/sbin/ip")
        python.arguments = ["netns", "exec", hosts.b, "python3", script, "zc-node", hosts.addressB, "12345", "4"]
        let output = Pipe()
        python.standardOutput = output
        python.standardError = FileHandle.nullDevice
        try python.run()
        python.waitUntilExit()  // bounded: the script exits after 4 s
        let printed = String(decoding: output.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
        #expect(printed.contains("found node-a._peat._tcp.local. node_id=node-a address=\(hosts.addressA):11204"), "zeroconf found the node:\n\(printed)")

        try node.waitForOutput(containing: "Peer discovered peer=zc-node addresses=[\(hosts.addressB):12345] source=mdns", timeout: 5)
        try node.waitForOutput(containing: "Peer lost peer=zc-node", timeout: 5)
        node.signal(SIGTERM)
        #expect(try node.finish().status == 0)
    }
}
