// swift-tools-version:6.2
// peat-mesh for Swift: the module graph of docs/DESIGN (see README.md, "Module map").
// Dependencies point one way: a module depends only on modules listed above it.

import PackageDescription

let swiftSettings: [SwiftSetting] = [
    .enableUpcomingFeature("ExistentialAny"),
    .enableUpcomingFeature("InternalImportsByDefault"),
]

let package = Package(
    name: "peat-mesh",
    platforms: [.macOS(.v15)],
    products: [
        .library(name: "PeatIdentity", targets: ["PeatIdentity"]),
        .library(name: "PeatCRDT", targets: ["PeatCRDT"]),
        .library(name: "PeatStorage", targets: ["PeatStorage"]),
        // The seams' conformance suites, for embedders' own implementations (as HummingbirdTesting).
        .library(name: "PeatStorageTesting", targets: ["PeatStorageTesting"]),
        .library(name: "PeatTransportTesting", targets: ["PeatTransportTesting"]),
        .library(name: "PeatDiscoveryTesting", targets: ["PeatDiscoveryTesting"]),
        .library(name: "PeatDiscovery", targets: ["PeatDiscovery"]),
        .library(name: "PeatKubernetesDiscovery", targets: ["PeatKubernetesDiscovery"]),
        .library(name: "PeatTransport", targets: ["PeatTransport"]),
        .library(name: "PeatMesh", targets: ["PeatMesh"]),
        .library(name: "PeatBroker", targets: ["PeatBroker"]),
        .executable(name: "peat-mesh-node", targets: ["PeatNode"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        .package(url: "https://github.com/apple/swift-nio.git", from: "2.101.0"),
        .package(url: "https://github.com/apple/swift-nio-ssl.git", from: "2.37.0"),
        .package(url: "https://github.com/apple/swift-certificates.git", from: "1.21.0"),
        .package(url: "https://github.com/apple/swift-asn1.git", from: "1.3.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird.git", from: "2.28.0"),
        .package(url: "https://github.com/hummingbird-project/hummingbird-websocket.git", from: "2.8.0"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/async-http-client.git", from: "1.37.0"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "5.0.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.0"),
        // swift-crypto: Ed25519 keys for swift-certificates in PeatTransport; in the identity tests,
        // an independent HKDF/Ed25519/SHA-256 implementation (BoringSSL) to check libsodium against.
        .package(url: "https://github.com/apple/swift-crypto.git", "3.12.0"..<"5.0.0"),
        .package(url: "https://github.com/x-sheep/swift-property-based.git", from: "2.0.0"),
    ],
    targets: [
        // System libraries: nothing else lives in these targets.
        .systemLibrary(
            name: "CSodium",
            pkgConfig: "libsodium",
            providers: [.apt(["libsodium-dev"])]
        ),
        .systemLibrary(
            name: "CLMDB",
            pkgConfig: "lmdb",
            providers: [.apt(["liblmdb-dev"])]
        ),

        .target(
            name: "PeatIdentity",
            dependencies: ["CSodium"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PeatCRDT",
            dependencies: [.product(name: "Crypto", package: "swift-crypto")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PeatStorage",
            dependencies: ["CLMDB"],
            swiftSettings: swiftSettings
        ),
        .target(name: "PeatStorageTesting", dependencies: ["PeatStorage"], swiftSettings: swiftSettings),
        .target(
            name: "PeatTransportTesting",
            dependencies: ["PeatTransport", "PeatIdentity", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PeatDiscoveryTesting",
            dependencies: ["PeatDiscovery", .product(name: "ServiceLifecycle", package: "swift-service-lifecycle")],
            swiftSettings: swiftSettings
        ),
        // Static, hybrid and mDNS discovery: SwiftNIO only.
        .target(
            name: "PeatDiscovery",
            dependencies: [
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        // Kubernetes discovery in a module of its own, so a service that discovers peers statically
        // or by mDNS links neither AsyncHTTPClient nor Yams.
        .target(
            name: "PeatKubernetesDiscovery",
            dependencies: [
                "PeatDiscovery",
                .product(name: "AsyncHTTPClient", package: "async-http-client"),
                .product(name: "Yams", package: "Yams"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PeatTransport",
            dependencies: [
                "PeatIdentity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOTLS", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PeatMesh",
            dependencies: [
                "PeatIdentity", "PeatCRDT", "PeatStorage", "PeatDiscovery", "PeatTransport",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PeatBroker",
            dependencies: [
                // The document model's JSON type and the one rule for collection names and IDs.
                "PeatCRDT", "PeatStorage",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdCore", package: "hummingbird"),
                .product(name: "HummingbirdWebSocket", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOHTTP1", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "Logging", package: "swift-log"),
            ],
            resources: [.copy("openapi.json")],
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "PeatNode",
            dependencies: [
                "PeatIdentity", "PeatCRDT", "PeatStorage", "PeatDiscovery", "PeatKubernetesDiscovery", "PeatTransport", "PeatMesh",
                "PeatBroker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
            ],
            swiftSettings: swiftSettings
        ),

        .testTarget(
            name: "PeatDiscoveryTests",
            dependencies: [
                "PeatDiscovery", "PeatKubernetesDiscovery", "PeatDiscoveryTesting", "PeatTestSupport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        // Not a product: helpers shared by the test targets.
        .target(
            name: "PeatTestSupport",
            dependencies: [
                .product(name: "PropertyBased", package: "swift-property-based"),
                // The Kubernetes API double (discovery and node tests).
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "HummingbirdTLS", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "SwiftASN1", package: "swift-asn1"),
                .product(name: "Crypto", package: "swift-crypto"),
            ],
            path: "Tests/PeatTestSupport",
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PeatCRDTTests",
            dependencies: [
                "PeatCRDT",
                "PeatTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PeatIdentityTests",
            dependencies: [
                "PeatIdentity",
                .product(name: "Crypto", package: "swift-crypto"),
                "PeatTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            exclude: ["Vectors"],
            swiftSettings: swiftSettings
        ),
        // Not a product: the child process of PeatStorage's crash test.
        .executableTarget(
            name: "PeatStorageCrashWriter",
            dependencies: ["PeatStorage"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PeatBrokerTests",
            dependencies: [
                "PeatBroker",
                .product(name: "HummingbirdTesting", package: "hummingbird"),
                .product(name: "HummingbirdWSTesting", package: "hummingbird-websocket"),
                .product(name: "HummingbirdWSClient", package: "hummingbird-websocket"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PeatStorageTests",
            dependencies: ["PeatStorage", "PeatStorageTesting", "PeatStorageCrashWriter", "CLMDB"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PeatTransportTests",
            dependencies: [
                "PeatTransport", "PeatTransportTesting", "PeatTestSupport",
                "PeatIdentity",
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "NIOSSL", package: "swift-nio-ssl"),
                .product(name: "NIOEmbedded", package: "swift-nio"),
                .product(name: "NIOConcurrencyHelpers", package: "swift-nio"),
                .product(name: "X509", package: "swift-certificates"),
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PeatMeshTests",
            dependencies: [
                "PeatMesh", "PeatCRDT", "PeatIdentity", "PeatStorage", "PeatDiscovery", "PeatTransport", "PeatTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "IntegrationTests",
            dependencies: [
                "PeatMesh", "PeatCRDT", "PeatIdentity", "PeatStorage", "PeatDiscovery", "PeatTransport", "PeatTestSupport",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                // The listener flood: raw sockets and the transport's rejection counters.
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "NIOPosix", package: "swift-nio"),
                .product(name: "Metrics", package: "swift-metrics"),
                .product(name: "MetricsTestKit", package: "swift-metrics"),
            ],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PeatNodeTests",
            dependencies: [
                "PeatNode",
                "PeatIdentity",
                "PeatTransport",
                "PeatMesh", "PeatStorage", "PeatCRDT",
                .product(name: "Crypto", package: "swift-crypto"),
                "PeatTestSupport",
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)

// libFuzzer targets for every decoder of outside bytes (README.md, "Fuzzing"): only with PEAT_FUZZ set, and
// built with `-sanitize=fuzzer,address` by `make fuzz`, so `swift build` and `swift test` never see them.
if Context.environment["PEAT_FUZZ"] != nil {
    let fuzzTargets: [(name: String, dependencies: [Target.Dependency])] = [
        ("FuzzFrameDecoder", ["PeatTransport", .product(name: "NIOCore", package: "swift-nio")]),
        ("FuzzFormationHandshake", ["PeatTransport", "PeatIdentity"]),
        ("FuzzRelayFrame", ["PeatTransport", "PeatIdentity", .product(name: "NIOCore", package: "swift-nio")]),
        ("FuzzMeshMessage", ["PeatMesh", "PeatFuzzMeshSupport"]),
        ("FuzzSyncSession", ["PeatMesh", "PeatFuzzMeshSupport"]),
        ("FuzzChangeBatch", ["PeatCRDT", "PeatFuzzCRDTSupport"]),
        ("FuzzLZCompression", ["PeatCRDT", "PeatFuzzCRDTSupport"]),
        ("FuzzSavedDocument", ["PeatCRDT", "PeatFuzzCRDTSupport"]),
        ("FuzzSnapshot", ["PeatCRDT", "PeatFuzzCRDTSupport"]),
        ("FuzzSyncMessage", ["PeatCRDT", "PeatFuzzCRDTSupport"]),
        ("FuzzVersionVector", ["PeatCRDT", "PeatFuzzCRDTSupport", "PeatMesh", "PeatStorage"]),
        ("FuzzDNSMessage", ["PeatDiscovery"]),
        ("FuzzWatchEvent", ["PeatKubernetesDiscovery", "PeatDiscovery"]),
        ("FuzzEndpointSlice", ["PeatKubernetesDiscovery", "PeatDiscovery"]),
    ]
    package.targets += [
        // LLVMFuzzerRunDriver: SwiftPM gives an executable's main its own name, so libFuzzer's main is
        // not linked; each target's main.swift hands its arguments to the driver instead.
        .target(name: "CPeatFuzz", path: "Fuzz/CPeatFuzz"),
        .target(name: "PeatFuzzSupport", dependencies: ["CPeatFuzz"], path: "Fuzz/PeatFuzzSupport", swiftSettings: swiftSettings),
        // Two replicas and a recorded session, for the mesh targets' harnesses and seeds.
        .target(
            name: "PeatFuzzMeshSupport",
            dependencies: ["PeatMesh", "PeatCRDT", "PeatStorage", "PeatIdentity", .product(name: "Logging", package: "swift-log")],
            path: "Fuzz/PeatFuzzMeshSupport", swiftSettings: swiftSettings),
        // Sample documents built with the editing API, and the checks every CRDT target runs.
        .target(name: "PeatFuzzCRDTSupport", dependencies: ["PeatCRDT"], path: "Fuzz/PeatFuzzCRDTSupport", swiftSettings: swiftSettings),
    ]
    package.targets += fuzzTargets.map { target in
        .executableTarget(
            name: target.name, dependencies: ["PeatFuzzSupport"] + target.dependencies, path: "Fuzz/\(target.name)",
            swiftSettings: swiftSettings)
    }
}
