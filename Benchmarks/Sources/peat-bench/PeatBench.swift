#if canImport(Glibc)
import Glibc
#endif
/// `make bench`: every workload, or only those named on the command line (`identity`, `transport`, `relay`).
/// `peat-bench crdt <workload>` runs one CRDT workload once (a fresh process per run, as the peer
/// scripts in shared/bench/peers do); it is not part of the no-argument run.
@main
struct PeatBench {
    static func main() async throws {
        let arguments = Array(CommandLine.arguments.dropFirst())
        if arguments.first == "crdt" { return CRDTBenchmarks.run(Array(arguments.dropFirst())) }
        if arguments.first == "relay-clients" { return try await RelayBenchmarks.holdClients(Array(arguments.dropFirst())) }
        let selected = Set(arguments)
        if selected.isEmpty || selected.contains("identity") { try IdentityBenchmarks.run() }
        if selected.isEmpty || selected.contains("storage") { try StorageBenchmarks.run() }
        if selected.isEmpty || selected.contains("transport") { try await TransportBenchmarks.run() }
        if selected.isEmpty || selected.contains("relay") { try await RelayBenchmarks.run() }
        if selected.isEmpty || selected.contains("broker") { try await BrokerBenchmarks.run() }
        if selected.isEmpty || selected.contains("discovery") { try await DiscoveryBenchmarks.runKubernetes() }
        if selected.contains("mdns-in-namespace") { try await DiscoveryBenchmarks.runMDNS() }
    }
}

/// Prints one result line and flushes it at once (stdout into a pipe is block-buffered).
func emit(_ line: String) {
    print(line)
    fflush(nil)
}
