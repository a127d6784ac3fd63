// swift-tools-version:6.0
import PackageDescription

// Warnings are errors in every target of ours: the code base stays warning-free.
// Exclusive access is checked at run time in debug builds, where every test
// runs, and in the fuzzer's build; release builds prove it at compile time only: the
// run-time checks were about 40 calls into the runtime per proxied request,
// 5% of its user-space instructions (docs/benchmarks.md).
let strict: [SwiftSetting] = [
    .unsafeFlags(["-warnings-as-errors"]),
    .unsafeFlags(["-enforce-exclusivity=unchecked"], .when(configuration: .release)),
]

let package = Package(
    name: "iamport-proxy",
    platforms: [.macOS(.v15)],
    products: [
        .executable(name: "iamport-proxy", targets: ["iamport-proxy"]),
        .executable(name: "fake-iamport", targets: ["fake-iamport"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser.git", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-log.git", from: "1.16.2"),
        .package(url: "https://github.com/apple/swift-metrics.git", from: "2.13.0"),
        .package(url: "https://github.com/swift-server/swift-prometheus.git", from: "2.4.1"),
        .package(url: "https://github.com/jpsim/Yams.git", from: "6.2.2"),
    ],
    targets: [
        .systemLibrary(name: "CCurl", pkgConfig: "libcurl", providers: [.apt(["libcurl4-openssl-dev", "libssl-dev"])]),
        .target(name: "HTTP1", swiftSettings: strict),
        .target(name: "CSystem"),
        .target(name: "EventLoops", dependencies: ["CSystem"], swiftSettings: strict),
        .target(name: "Server", dependencies: ["HTTP1", "EventLoops", "CSystem"], swiftSettings: strict),
        .target(name: "Upstream", dependencies: ["CCurl", "HTTP1", "EventLoops"], swiftSettings: strict),
        .target(name: "Iamport", dependencies: ["Upstream", "HTTP1", "EventLoops"], swiftSettings: strict),
        .target(
            name: "Proxy",
            dependencies: [
                "Server", "Upstream", "Iamport", "HTTP1", "EventLoops", "CSystem",
                .product(name: "Logging", package: "swift-log"),
                .product(name: "CoreMetrics", package: "swift-metrics"),
                .product(name: "Prometheus", package: "swift-prometheus"),
            ],
            swiftSettings: strict
        ),
        // The config file of a multi-account proxy: YAML in, resolved accounts out.
        .target(
            name: "Accounts",
            dependencies: ["Proxy", "Iamport", "Server", "HTTP1", "EventLoops", .product(name: "Yams", package: "Yams")],
            swiftSettings: strict
        ),
        .executableTarget(
            name: "iamport-proxy",
            dependencies: [
                "Accounts", "Proxy", "Server", "Upstream", "Iamport", "EventLoops", "HTTP1",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .target(name: "FakeIamport", dependencies: ["Server", "HTTP1", "EventLoops"], swiftSettings: strict),
        .executableTarget(
            name: "fake-iamport",
            dependencies: ["FakeIamport", "Server", "EventLoops", .product(name: "ArgumentParser", package: "swift-argument-parser")],
            swiftSettings: strict
        ),
        .target(name: "TestSupport", path: "Tests/TestSupport"),
        .testTarget(name: "EventLoopsTests", dependencies: ["EventLoops", "CSystem"], swiftSettings: strict),
        .testTarget(name: "HTTP1Tests", dependencies: ["HTTP1"], swiftSettings: strict),
        // The server connection's state machine, with scripted bytes and a manual clock.
        .testTarget(name: "ServerTests", dependencies: ["Server", "HTTP1"], swiftSettings: strict),
        // The upstream exchange's state machine and the pool, with scripted bytes and a manual clock.
        .testTarget(name: "UpstreamTests", dependencies: ["Upstream", "HTTP1"], swiftSettings: strict),
        .testTarget(name: "IamportTests", dependencies: ["Iamport", "EventLoops"], swiftSettings: strict),
        .testTarget(
            name: "ProxyTests",
            dependencies: [
                "Proxy", "Server", "HTTP1", "FakeIamport", "Iamport", "Upstream", "EventLoops", "TestSupport",
                .product(name: "Logging", package: "swift-log"),
            ],
            swiftSettings: strict
        ),
        .testTarget(name: "FakeIamportTests", dependencies: ["FakeIamport", "TestSupport"], swiftSettings: strict),
        .testTarget(name: "AccountsTests", dependencies: ["Accounts", "Proxy", "Iamport", "EventLoops"], swiftSettings: strict),
        .testTarget(
            name: "EndToEndTests",
            dependencies: ["Accounts", "FakeIamport", "Server", "HTTP1", "EventLoops", "TestSupport"],
            swiftSettings: strict
        ),
    ],
    swiftLanguageModes: [.v6]
)
