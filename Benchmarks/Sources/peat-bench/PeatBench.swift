#if canImport(Glibc)
import Glibc
#endif
/// `make bench`: every workload, or only those named on the command line (`identity`, `transport`).
@main
struct PeatBench {
    static func main() async throws {
        let selected = Set(CommandLine.arguments.dropFirst())
        if selected.isEmpty || selected.contains("identity") { try IdentityBenchmarks.run() }
        if selected.isEmpty || selected.contains("storage") { try StorageBenchmarks.run() }
        if selected.isEmpty || selected.contains("transport") { try await TransportBenchmarks.run() }
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
