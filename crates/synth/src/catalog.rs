//! The shop's fixed vocabulary: acquisition channels, cities, names, products, search terms,
//! coupons and companies. Static tables only; no randomness here.

/// How a person first reached the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub enum Channel {
    /// Unpaid search results (Baidu, Sogou, Bing).
    OrganicSearch,
    /// An app-store listing (Apple App Store, Huawei AppGallery, Xiaomi GetApps).
    AppStore,
    /// The shop's WeChat official account.
    WechatOfficial,
    /// The shop's newsletter.
    Email,
    /// Paid search ads.
    SearchAds,
    /// Paid ads in social feeds (Douyin, WeChat Moments, Weibo).
    SocialAds,
    /// Paid key-opinion-leader posts (Xiaohongshu, Douyin, Bilibili).
    Kol,
    /// Invited by an existing user.
    Referral,
}

/// The three families of channels a growth team reports on.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum ChannelGroup {
    /// Channels the shop owns: organic search, app stores, WeChat official account, email.
    Owned,
    /// Channels the shop pays for: search ads, social ads, KOLs.
    Paid,
    /// Invitations by existing users.
    Referral,
}

impl ChannelGroup {
    /// `owned`, `paid` or `referral`.
    pub fn as_str(self) -> &'static str {
        match self {
            ChannelGroup::Owned => "owned",
            ChannelGroup::Paid => "paid",
            ChannelGroup::Referral => "referral",
        }
    }
}

impl Channel {
    /// Every channel, in a stable order.
    pub const ALL: [Channel; 8] = [
        Channel::OrganicSearch,
        Channel::AppStore,
        Channel::WechatOfficial,
        Channel::Email,
        Channel::SearchAds,
        Channel::SocialAds,
        Channel::Kol,
        Channel::Referral,
    ];

    /// The share of arrivals each channel of [`Channel::ALL`] is meant to bring.
    pub(crate) const MIX: [f64; 8] = [0.20, 0.12, 0.12, 0.04, 0.14, 0.14, 0.10, 0.14];

    /// The snake-case name used in traits and campaign context (`organic_search`, …).
    pub fn as_str(self) -> &'static str {
        match self {
            Channel::OrganicSearch => "organic_search",
            Channel::AppStore => "app_store",
            Channel::WechatOfficial => "wechat_official_account",
            Channel::Email => "email",
            Channel::SearchAds => "search_ads",
            Channel::SocialAds => "social_ads",
            Channel::Kol => "kol",
            Channel::Referral => "referral",
        }
    }

    /// Owned, paid or referral.
    pub fn group(self) -> ChannelGroup {
        match self {
            Channel::OrganicSearch
            | Channel::AppStore
            | Channel::WechatOfficial
            | Channel::Email => ChannelGroup::Owned,
            Channel::SearchAds | Channel::SocialAds | Channel::Kol => ChannelGroup::Paid,
            Channel::Referral => ChannelGroup::Referral,
        }
    }

    /// The `utm_medium` of the landing link.
    pub fn utm_medium(self) -> &'static str {
        match self {
            Channel::OrganicSearch => "organic",
            Channel::AppStore => "app_store",
            Channel::WechatOfficial => "official_account",
            Channel::Email => "email",
            Channel::SearchAds => "cpc",
            Channel::SocialAds => "paid_social",
            Channel::Kol => "kol",
            Channel::Referral => "referral",
        }
    }

    /// The possible `utm_source` values of the channel, one picked per person.
    pub(crate) fn utm_sources(self) -> &'static [&'static str] {
        match self {
            Channel::OrganicSearch => &["baidu", "baidu", "baidu", "sogou", "bing"],
            Channel::AppStore => &["apple_app_store", "huawei_appgallery", "xiaomi_getapps"],
            Channel::WechatOfficial => &["wechat"],
            Channel::Email => &["newsletter"],
            Channel::SearchAds => &["baidu", "baidu", "360_search"],
            Channel::SocialAds => &["douyin", "wechat_moments", "weibo"],
            Channel::Kol => &["xiaohongshu", "douyin", "bilibili"],
            Channel::Referral => &["invite"],
        }
    }

    /// The `utm_campaign` of the landing link.
    pub(crate) fn utm_campaign(self) -> &'static str {
        match self {
            Channel::OrganicSearch => "seo",
            Channel::AppStore => "aso",
            Channel::WechatOfficial => "oa_weekly_picks",
            Channel::Email => "newsletter_weekly",
            Channel::SearchAds => "sem_brand_generic",
            Channel::SocialAds => "feed_new_customer",
            Channel::Kol => "kol_seeding",
            Channel::Referral => "invite_friends",
        }
    }

    /// Probability that a visitor from this channel signs up at all.
    pub(crate) fn signup_rate(self) -> f64 {
        match self.group() {
            ChannelGroup::Owned => 0.74,
            ChannelGroup::Paid => 0.62,
            ChannelGroup::Referral => 0.88,
        }
    }

    /// Probability that a signed-up person from this channel ever places a first order.
    pub(crate) fn first_order_rate(self) -> f64 {
        match self {
            Channel::Referral => 0.62,
            Channel::Email | Channel::WechatOfficial => 0.58,
            Channel::OrganicSearch | Channel::AppStore => 0.52,
            Channel::SearchAds => 0.46,
            Channel::SocialAds | Channel::Kol => 0.40,
        }
    }

    /// Weights of the platforms (iOS app, Android app, WeChat mini program, web) people from
    /// this channel use.
    pub(crate) fn platform_mix(self) -> [f64; 4] {
        match self {
            Channel::AppStore => [0.45, 0.55, 0.0, 0.0],
            Channel::WechatOfficial => [0.05, 0.05, 0.6, 0.3],
            Channel::Referral => [0.18, 0.17, 0.5, 0.15],
            Channel::OrganicSearch | Channel::SearchAds => [0.2, 0.25, 0.1, 0.45],
            Channel::Email => [0.2, 0.2, 0.0, 0.6],
            Channel::SocialAds | Channel::Kol => [0.25, 0.3, 0.3, 0.15],
        }
    }
}

impl std::fmt::Display for Channel {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(self.as_str())
    }
}

/// Where a person uses the shop.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Platform {
    /// The iOS app: `screen` calls, `Application Opened`.
    Ios,
    /// The Android app: `screen` calls, `Application Opened`.
    Android,
    /// The WeChat mini program: `screen` calls.
    MiniProgram,
    /// The mobile or desktop web shop: `page` calls.
    Web,
}

impl Platform {
    pub(crate) const ALL: [Platform; 4] = [
        Platform::Ios,
        Platform::Android,
        Platform::MiniProgram,
        Platform::Web,
    ];

    /// `ios`, `android`, `wechat_mini_program` or `web`.
    pub fn as_str(self) -> &'static str {
        match self {
            Platform::Ios => "ios",
            Platform::Android => "android",
            Platform::MiniProgram => "wechat_mini_program",
            Platform::Web => "web",
        }
    }

    /// Native apps open with `Application Opened` and receive pushes.
    pub fn is_app(self) -> bool {
        matches!(self, Platform::Ios | Platform::Android)
    }

    /// The message `channel` of client-side calls: `mobile` or `browser`.
    pub(crate) fn message_channel(self) -> &'static str {
        match self {
            Platform::Web => "browser",
            _ => "mobile",
        }
    }

    pub(crate) fn os_name(self) -> &'static str {
        match self {
            Platform::Ios => "iOS",
            Platform::Android => "Android",
            Platform::MiniProgram => "WeChat",
            Platform::Web => "Web",
        }
    }
}

/// Cities (English names) with weights roughly following online shoppers.
pub(crate) const CITIES: [(&str, f64); 24] = [
    ("Shanghai", 9.0),
    ("Beijing", 8.5),
    ("Shenzhen", 7.0),
    ("Guangzhou", 7.0),
    ("Hangzhou", 5.5),
    ("Chengdu", 5.5),
    ("Chongqing", 4.5),
    ("Wuhan", 4.0),
    ("Nanjing", 3.8),
    ("Suzhou", 3.6),
    ("Xi'an", 3.4),
    ("Tianjin", 3.2),
    ("Changsha", 2.8),
    ("Zhengzhou", 2.7),
    ("Dongguan", 2.5),
    ("Qingdao", 2.4),
    ("Xiamen", 2.0),
    ("Hefei", 2.0),
    ("Kunming", 1.8),
    ("Shenyang", 1.7),
    ("Fuzhou", 1.6),
    ("Ningbo", 1.6),
    ("Harbin", 1.4),
    ("Nanning", 1.2),
];

/// Common surnames.
pub(crate) const SURNAMES: [&str; 24] = [
    "王", "李", "张", "刘", "陈", "杨", "黄", "赵", "吴", "周", "徐", "孙", "马", "朱", "胡", "郭",
    "何", "林", "罗", "高", "郑", "梁", "谢", "宋",
];

/// Their romanisations, for e-mail handles.
pub(crate) const SURNAMES_PINYIN: [&str; 24] = [
    "wang", "li", "zhang", "liu", "chen", "yang", "huang", "zhao", "wu", "zhou", "xu", "sun", "ma",
    "zhu", "hu", "guo", "he", "lin", "luo", "gao", "zheng", "liang", "xie", "song",
];

/// Characters of given names.
pub(crate) const GIVEN: [&str; 32] = [
    "伟", "芳", "娜", "敏", "静", "丽", "强", "磊", "洋", "艳", "勇", "军", "杰", "娟", "涛", "明",
    "超", "秀", "霞", "平", "刚", "桂", "婷", "欣", "宇", "浩", "佳", "雪", "晨", "琳", "博", "悦",
];

pub(crate) const EMAIL_DOMAINS: [(&str, f64); 6] = [
    ("qq.com", 5.0),
    ("163.com", 2.5),
    ("126.com", 1.0),
    ("sina.com", 0.5),
    ("outlook.com", 0.6),
    ("gmail.com", 0.4),
];

pub(crate) const AGE_BANDS: [(&str, f64); 5] = [
    ("18-24", 2.2),
    ("25-34", 3.6),
    ("35-44", 2.4),
    ("45-54", 1.2),
    ("55+", 0.6),
];

/// One product category: its English name, a short code for product ids, the median price in
/// yuan, and a few typical product names.
pub(crate) struct Category {
    pub name: &'static str,
    pub code: &'static str,
    pub median_price: f64,
    pub products: [&'static str; 4],
    pub searches: [&'static str; 3],
}

pub(crate) const CATEGORIES: [Category; 8] = [
    Category {
        name: "Beauty",
        code: "BEA",
        median_price: 129.0,
        products: [
            "保湿面膜 10片装",
            "哑光口红",
            "氨基酸洗面奶",
            "玻尿酸精华液",
        ],
        searches: ["面膜", "口红", "洗面奶"],
    },
    Category {
        name: "Apparel",
        code: "APP",
        median_price: 169.0,
        products: ["纯棉短袖T恤", "碎花连衣裙", "轻薄羽绒服", "休闲牛仔裤"],
        searches: ["连衣裙", "羽绒服", "T恤"],
    },
    Category {
        name: "Electronics",
        code: "ELE",
        median_price: 399.0,
        products: ["降噪蓝牙耳机", "快充充电宝", "智能手环", "机械键盘"],
        searches: ["蓝牙耳机", "充电宝", "手环"],
    },
    Category {
        name: "Home",
        code: "HOM",
        median_price: 149.0,
        products: ["空气炸锅", "乳胶枕", "收纳箱三件套", "电动牙刷"],
        searches: ["空气炸锅", "枕头", "收纳"],
    },
    Category {
        name: "Food & Beverage",
        code: "FNB",
        median_price: 59.0,
        products: ["每日坚果 30包", "挂耳咖啡", "螺蛳粉", "明前龙井"],
        searches: ["坚果", "咖啡", "螺蛳粉"],
    },
    Category {
        name: "Mother & Baby",
        code: "MNB",
        median_price: 189.0,
        products: ["婴儿纸尿裤", "婴儿奶粉 3段", "儿童保温杯", "婴儿湿巾"],
        searches: ["纸尿裤", "奶粉", "湿巾"],
    },
    Category {
        name: "Sports",
        code: "SPO",
        median_price: 229.0,
        products: ["缓震跑步鞋", "瑜伽垫", "速干运动裤", "跳绳"],
        searches: ["跑步鞋", "瑜伽垫", "运动裤"],
    },
    Category {
        name: "Pets",
        code: "PET",
        median_price: 99.0,
        products: ["无谷猫粮", "猫砂", "狗狗咬胶", "宠物饮水机"],
        searches: ["猫粮", "猫砂", "狗粮"],
    },
];

/// Variants of each base product (colours, sizes, bundles).
pub(crate) const VARIANTS: u32 = 40;

/// Number of distinct products: categories × base products × variants.
pub(crate) const PRODUCTS: u32 = CATEGORIES.len() as u32 * 4 * VARIANTS;

/// The parts of a product id: category, base product, variant.
pub(crate) fn product_parts(product: u32) -> (&'static Category, &'static str, u32) {
    let variant = product % VARIANTS;
    let base = (product / VARIANTS) % 4;
    let category = &CATEGORIES[(product / VARIANTS / 4) as usize % CATEGORIES.len()];
    (category, category.products[base as usize], variant)
}

/// Coupon codes and their discount as a share of the order.
pub(crate) const COUPON_NEW_USER: (&str, f64) = ("NEWUSER20", 0.20);
pub(crate) const COUPON_618: (&str, f64) = ("618SALE", 0.15);
pub(crate) const COUPON_DOUBLE_11: (&str, f64) = ("DOUBLE11", 0.15);
pub(crate) const COUPON_MEMBER: (&str, f64) = ("MEMBER10", 0.10);
pub(crate) const COUPON_FREE_SHIPPING: (&str, f64) = ("FREESHIP", 0.03);

/// Words for company names of B2B buyers.
pub(crate) const COMPANY_WORDS: [&str; 12] = [
    "Xinhe",
    "Huayu",
    "Jinfeng",
    "Tianrui",
    "Boyuan",
    "Hengxin",
    "Minghui",
    "Zhongcheng",
    "Lianchuang",
    "Ruida",
    "Kangtai",
    "Yongsheng",
];

pub(crate) const COMPANY_KINDS: [(&str, &str); 6] = [
    ("Trading", "wholesale"),
    ("Technology", "software"),
    ("Catering", "food_service"),
    ("Education", "education"),
    ("Property Services", "real_estate"),
    ("Design Studio", "creative"),
];
