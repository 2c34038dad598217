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
        .library(name: "PeatDiscovery", targets: ["PeatDiscovery"]),
        .library(name: "PeatTransport", targets: ["PeatTransport"]),
        .library(name: "PeatMesh", targets: ["PeatMesh"]),
        .library(name: "PeatBroker", targets: ["PeatBroker"]),
        .executable(name: "peat-mesh-node", targets: ["PeatNode"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.5.0"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.0"),
        .package(url: "https://github.com/swift-server/swift-service-lifecycle.git", from: "2.13.0"),
        // Tests only: an independent HKDF/Ed25519/SHA-256 implementation (BoringSSL) to check
        // the libsodium-based identity against, and property-based testing.
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
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PeatStorage",
            dependencies: ["PeatCRDT", "CLMDB"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PeatDiscovery",
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PeatTransport",
            dependencies: ["PeatIdentity"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PeatMesh",
            dependencies: ["PeatIdentity", "PeatCRDT", "PeatStorage", "PeatDiscovery", "PeatTransport"],
            swiftSettings: swiftSettings
        ),
        .target(
            name: "PeatBroker",
            swiftSettings: swiftSettings
        ),
        .executableTarget(
            name: "PeatNode",
            dependencies: [
                "PeatIdentity", "PeatMesh", "PeatBroker",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
                .product(name: "ServiceLifecycle", package: "swift-service-lifecycle"),
                .product(name: "UnixSignals", package: "swift-service-lifecycle"),
            ],
            swiftSettings: swiftSettings
        ),

        .testTarget(
            name: "PeatIdentityTests",
            dependencies: [
                "PeatIdentity",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            exclude: ["Vectors"],
            swiftSettings: swiftSettings
        ),
        .testTarget(
            name: "PeatNodeTests",
            dependencies: [
                "PeatNode",
                "PeatIdentity",
                .product(name: "Crypto", package: "swift-crypto"),
                .product(name: "PropertyBased", package: "swift-property-based"),
            ],
            swiftSettings: swiftSettings
        ),
    ]
)
