//! What the catalogue's items are and are for, per leaf category: the features and uses a
//! shop would write, so that generated descriptions carry meaning a search can find (the
//! text semantic search embeds). Keyed by the leaf's SKU code.

/// Features (what an item has) and uses (what it is good for) of one leaf's items.
pub(crate) struct Vocabulary {
    pub(crate) features: &'static [&'static str],
    pub(crate) uses: &'static [&'static str],
}

/// The vocabulary of the leaf with SKU code `code`; an empty one for an unknown code.
pub(crate) fn of(code: &str) -> &'static Vocabulary {
    VOCABULARIES
        .iter()
        .find(|(c, _)| *c == code)
        .map_or(&EMPTY, |(_, v)| v)
}

static EMPTY: Vocabulary = Vocabulary {
    features: &[],
    uses: &[],
};

macro_rules! vocabulary {
    ([$($f:literal),+ $(,)?], [$($u:literal),+ $(,)?]) => {
        Vocabulary { features: &[$($f),+], uses: &[$($u),+] }
    };
}

static VOCABULARIES: &[(&str, Vocabulary)] = &[
    (
        "PCE",
        vocabulary!(
            [
                "RTX 4060-class graphics",
                "six-core processor",
                "16 GB of memory",
                "1 TB NVMe drive",
                "tempered glass side panel",
                "RGB case fans",
                "Wi-Fi 6 built in",
                "tool-free upgrade bays"
            ],
            [
                "smooth 1080p gaming at high settings",
                "popular online titles such as battle royales",
                "a first gaming setup on a budget",
                "homework and streaming video between matches"
            ]
        ),
    ),
    (
        "PCX",
        vocabulary!(
            [
                "RTX 4080 or 4090-class graphics",
                "sixteen-core processor",
                "64 GB of DDR5 memory",
                "liquid cooling with a 360 mm radiator",
                "4 TB of NVMe storage",
                "addressable RGB lighting",
                "850 W gold-rated power supply",
                "whisper-quiet fans under load"
            ],
            [
                "4K gaming with ray tracing at ultra settings",
                "streaming and recording gameplay at once",
                "3D rendering, video editing and AI workloads",
                "high-refresh competitive play"
            ]
        ),
    ),
    (
        "SFF",
        vocabulary!(
            [
                "10-litre case",
                "near-silent cooling",
                "RTX 4060 Ti-class graphics",
                "discreet design without flashy lighting",
                "HDMI 2.1 output",
                "Wi-Fi 6E and Bluetooth"
            ],
            [
                "fits under a desk or on a TV cabinet",
                "a quiet media and gaming box for the lounge",
                "a clean, minimal workspace",
                "couch gaming on the television"
            ]
        ),
    ),
    (
        "LPG",
        vocabulary!(
            [
                "165 Hz display",
                "RTX 4070 laptop graphics",
                "per-key RGB keyboard",
                "vapor chamber cooling",
                "1 TB SSD",
                "thin aluminium chassis"
            ],
            [
                "gaming away from home",
                "travel with a full game library",
                "esports titles at high frame rates",
                "creative work on the move"
            ]
        ),
    ),
    (
        "LPU",
        vocabulary!(
            [
                "weighs under 1.3 kg",
                "up to 18 hours of battery life",
                "bright 14-inch OLED screen",
                "backlit keyboard",
                "USB-C charging",
                "fanless, silent design"
            ],
            [
                "lectures, note taking and essays",
                "writing and email from anywhere",
                "business trips and video calls",
                "everyday browsing and office work"
            ]
        ),
    ),
    (
        "GPN",
        vocabulary!(
            [
                "NVIDIA RTX architecture",
                "DLSS 3 frame generation",
                "hardware ray tracing",
                "triple-fan cooler",
                "16 GB of GDDR6X memory",
                "NVENC video encoder"
            ],
            [
                "higher frame rates in new games",
                "ray-traced lighting and reflections",
                "GPU-accelerated AI and rendering",
                "streaming with low CPU load"
            ]
        ),
    ),
    (
        "GPA",
        vocabulary!(
            [
                "AMD RDNA 3 architecture",
                "FSR upscaling",
                "generous 16 to 24 GB of memory",
                "dual-BIOS switch",
                "strong price to performance"
            ],
            [
                "1440p gaming at high settings",
                "a budget-friendly upgrade for an older PC",
                "Linux-friendly open drivers",
                "high frame rates without paying a premium"
            ]
        ),
    ),
    (
        "CPU",
        vocabulary!(
            [
                "up to 24 cores",
                "boost clocks above 5 GHz",
                "large 3D V-Cache",
                "unlocked for overclocking",
                "PCIe 5.0 support"
            ],
            [
                "faster video exports and code compiles",
                "top gaming frame rates",
                "multitasking with heavy applications",
                "a platform upgrade for years to come"
            ]
        ),
    ),
    (
        "RAM",
        vocabulary!(
            [
                "DDR5 at 6000 MT/s",
                "low CL30 latency",
                "XMP and EXPO profiles",
                "heat spreaders",
                "lifetime warranty"
            ],
            [
                "running many applications and browser tabs at once",
                "virtual machines and large spreadsheets",
                "smoother gaming with fewer stutters",
                "a cheap upgrade for a sluggish system"
            ]
        ),
    ),
    (
        "SSD",
        vocabulary!(
            [
                "PCIe 4.0 NVMe",
                "7,000 MB/s reads",
                "DRAM cache",
                "five-year warranty",
                "heatsink option for consoles"
            ],
            [
                "booting Windows in seconds",
                "storing large photo and game libraries",
                "shorter loading screens",
                "reviving an ageing laptop"
            ]
        ),
    ),
    (
        "PSU",
        vocabulary!(
            [
                "80 Plus Gold efficiency",
                "fully modular cables",
                "ATX 3.0 with a 12VHPWR connector",
                "over-voltage and short-circuit protection",
                "zero-RPM fan mode",
                "ten-year warranty"
            ],
            [
                "stable power for high-end graphics cards",
                "quiet, efficient everyday builds",
                "tidy cable management",
                "safe upgrades to more powerful parts"
            ]
        ),
    ),
    (
        "CLR",
        vocabulary!(
            [
                "twin-tower heatsink",
                "240 or 360 mm AIO liquid cooler",
                "fluid-dynamic bearing fans",
                "low-noise PWM control",
                "thermal paste included"
            ],
            [
                "lower temperatures under heavy load",
                "a quieter computer",
                "overclocking headroom",
                "replacing a noisy stock cooler"
            ]
        ),
    ),
    (
        "KBD",
        vocabulary!(
            [
                "hot-swappable mechanical switches",
                "tactile or linear switch options",
                "PBT keycaps",
                "aluminium frame",
                "per-key RGB",
                "wireless and wired modes"
            ],
            [
                "long writing and coding sessions",
                "fast, precise gaming inputs",
                "a satisfying typing feel",
                "a tidy desk with a compact layout"
            ]
        ),
    ),
    (
        "MSE",
        vocabulary!(
            [
                "26,000 DPI optical sensor",
                "under 60 grams",
                "low-latency wireless",
                "programmable side buttons",
                "PTFE feet"
            ],
            [
                "aim precision in first-person shooters",
                "long sessions without hand fatigue",
                "MMO macros",
                "everyday work with a responsive cursor"
            ]
        ),
    ),
    (
        "MON",
        vocabulary!(
            [
                "27-inch 1440p IPS panel",
                "165 to 240 Hz refresh rate",
                "1 ms response time",
                "G-Sync and FreeSync compatible",
                "HDR support",
                "height-adjustable stand"
            ],
            [
                "competitive gaming with smooth motion",
                "a roomy workspace for documents and code",
                "photo editing with accurate colour",
                "watching films in HDR"
            ]
        ),
    ),
    (
        "HST",
        vocabulary!(
            [
                "7.1 surround sound",
                "detachable noise-cancelling microphone",
                "active noise cancellation",
                "memory-foam ear cushions",
                "30-hour wireless battery"
            ],
            [
                "positional audio in games",
                "clear voice chat with friends and teammates",
                "focus during calls from the home office",
                "music and films without disturbing others"
            ]
        ),
    ),
    (
        "BLB",
        vocabulary!(
            [
                "16 million colours",
                "tunable white from warm to cool",
                "app and voice control",
                "schedules and timers",
                "works with Alexa, Google and Apple Home",
                "uses 9 W"
            ],
            [
                "dimming the bedroom at night",
                "a sunrise alarm that lights the room gradually",
                "turning lamps on while away",
                "mood lighting for film nights"
            ]
        ),
    ),
    (
        "STR",
        vocabulary!(
            [
                "adhesive backing",
                "cut-to-length segments",
                "music sync mode",
                "multi-zone colour effects",
                "app and voice control"
            ],
            [
                "backlighting a television",
                "lighting under kitchen cabinets",
                "accent lighting for a desk or gaming setup",
                "decorating shelves and stairs"
            ]
        ),
    ),
    (
        "CAM",
        vocabulary!(
            [
                "2K video",
                "colour night vision",
                "person and package detection",
                "two-way talk",
                "weatherproof housing",
                "local and cloud recording"
            ],
            [
                "watching the front door and the driveway",
                "checking on pets or children",
                "alerts on your phone when someone arrives",
                "home security while travelling"
            ]
        ),
    ),
    (
        "LCK",
        vocabulary!(
            [
                "fingerprint reader",
                "PIN keypad",
                "auto-lock",
                "temporary access codes",
                "activity log in the app",
                "fits most existing doors"
            ],
            [
                "keyless entry",
                "letting guests, cleaners or dog walkers in remotely",
                "knowing who came home and when",
                "never getting locked out again"
            ]
        ),
    ),
    (
        "THM",
        vocabulary!(
            [
                "learns your schedule",
                "room sensors",
                "geofencing",
                "energy reports",
                "works with boilers and heat pumps",
                "voice assistant support"
            ],
            [
                "cutting heating and cooling costs",
                "a warm home on arrival",
                "controlling the temperature from anywhere",
                "saving energy without thinking about it"
            ]
        ),
    ),
    (
        "RTR",
        vocabulary!(
            [
                "Wi-Fi 6 dual band",
                "four gigabit ports",
                "parental controls",
                "built-in VPN server",
                "automatic security updates",
                "QoS for gaming"
            ],
            [
                "fast internet in a flat or small house",
                "lag-free online play",
                "many devices online at once",
                "safer browsing for the family"
            ]
        ),
    ),
    (
        "MSH",
        vocabulary!(
            [
                "tri-band Wi-Fi 6E",
                "three nodes covering up to 600 m²",
                "seamless roaming",
                "wired backhaul",
                "simple app setup"
            ],
            [
                "coverage in every room of a large home",
                "eliminating dead spots upstairs",
                "Wi-Fi in the garden, garage or home office",
                "one network name throughout the house"
            ]
        ),
    ),
    (
        "BLD",
        vocabulary!(
            [
                "one-to-one with a build specialist",
                "a parts list within your budget",
                "compatibility and bottleneck checks",
                "a step-by-step assembly plan"
            ],
            [
                "planning a first custom PC",
                "choosing upgrades that make the most difference",
                "avoiding parts that do not fit together",
                "safe overclocking"
            ]
        ),
    ),
    (
        "SMH",
        vocabulary!(
            [
                "a visit from an installer",
                "device pairing and automations",
                "one app for lights, locks, cameras and heating",
                "a walkthrough for the household"
            ],
            [
                "getting devices you already bought working",
                "making every gadget work together",
                "security cameras and locks set up properly",
                "lighting scenes for each room"
            ]
        ),
    ),
    (
        "NET",
        vocabulary!(
            [
                "speed and coverage measurements in every room",
                "a written report with fixes",
                "router and firewall configuration review",
                "interference analysis"
            ],
            [
                "finding why the internet is slow",
                "planning Wi-Fi for a home or small office",
                "closing security gaps in the network",
                "lower latency for games and calls"
            ]
        ),
    ),
];

#[cfg(test)]
mod tests {
    use super::*;
    use crate::generate::catalog::{PRODUCT_TREE, SERVICE_TREE};

    #[test]
    fn every_leaf_has_features_and_uses() {
        for root in PRODUCT_TREE.iter().chain(std::iter::once(&SERVICE_TREE)) {
            for leaf in root.branches.iter().flat_map(|b| b.leaves) {
                let v = of(leaf.code);
                assert!(
                    v.features.len() >= 4 && v.uses.len() >= 4,
                    "{} ({}) lacks a vocabulary",
                    leaf.name,
                    leaf.code
                );
            }
        }
        assert!(of("nope").features.is_empty());
    }
}
