"""Person names in Chinese text, Simplified and Traditional, for ``ops.redaction``.

No Chinese NER model installs offline from the package registry, so names are found the way a reader
finds them: a surname (百家姓, the ~300 commonest, plus compound ones) followed by one or two characters
that are usual in given names, where jieba's dictionary does not read those characters as an ordinary
word; plus jieba's own person tags (``nr``), titles after a surname (王先生, 李女士, 张老师), familiar
forms (小王, 老李, 阿强) and cue phrases before any name (我叫, 收件人是, 我老公, 姓刘).

Traditional text is converted to Simplified with OpenCC first (character for character, so offsets
stay valid), because jieba's dictionary is Simplified.

jieba runs without its HMM (dictionary words only, unknown characters stay single), which makes
"is this an ordinary word" a dictionary look-up: 高兴, 周末, 黄色, 马上 are words, 张伟 is not.
Brands and places that look like names (李宁, 华为, 张家口) are listed in ``NOT_NAMES``.
Redaction is conservative: when a cue says a name follows, the next word is masked even if it
looks ordinary, as long as it starts with a surname ("收件人严格") or is rare in jieba's corpus.
"""

from __future__ import annotations

import re
import threading
from typing import Any


def _words(text: str) -> frozenset[str]:
    return frozenset(text.split())


# Surnames that are also frequent words on their own (和, 都, 来...): a name needs more evidence.
AMBIGUOUS_SURNAMES = frozenset("和由但那来都相初门国平云容敬公元信展利干居斯海原南明乐强普伯成查段计支银单车连路管解楼时")
# Surnames that are rarely anything else in running text once jieba has taken the words around them.
SURNAMES = frozenset(
    "王李张刘陈杨黄赵吴周徐孙马朱胡郭何高林罗郑梁谢宋唐许韩冯邓曹彭曾肖田董袁潘于蒋蔡余杜叶程苏魏吕丁任沈"
    "姚卢姜崔钟谭陆汪范金石廖贾夏韦付方白邹孟熊秦邱江尹薛闫段雷侯龙史陶黎贺顾毛郝龚邵万钱严覃武戴莫孔向"
    "汤常温康施文牛樊葛邢安齐易乔伍庞颜倪庄聂章鲁岳翟殷詹申欧耿关兰焦俞左柳甘祝包宁尚符舒阮柯纪梅童凌毕"
    "单季裴霍涂成苗谷盛曲翁冉骆蓝路游辛靳管柴蒙鲍华喻祁蒲房滕屈饶解牟艾尤阳时穆农司卓古吉缪简车项连芦麦"
    "褚娄窦戚岑景党宫费卜冷晏席卫米柏宗瞿桂全佟应臧闵苟邬边卞姬师仇栾隋商刁沙荣巫寇桑郎甄丛仲虞敖巩佘池"
    "查麻苑迟邝官封谈匡鞠惠荆冀郁胥班储栗燕楚鄢劳谌奚皮粟冼蔺楼盘满闻厉伊仝郜阚花权帅屠豆朴盖练廉禹井"
    "祖漆巴丰支卿狄计索宣晋芮扈晁阙浦戈伏鹿薄邸雍辜羊母裘亓修邰赫杭况宿鲜印逯隆茹诸战慕危银亢嵇湛宾戎"
    "勾茅揭尉冶檀衣昝智幸奉植衡富尧闭洪赖"
) - AMBIGUOUS_SURNAMES
COMPOUND_SURNAMES = _words(
    "欧阳 司马 上官 诸葛 东方 皇甫 尉迟 公孙 慕容 长孙 宇文 司徒 夏侯 轩辕 令狐 端木 独孤 南宫 西门 百里 呼延 "
    "钟离 万俟 澹台 公冶 太史 申屠 闻人 赫连 拓跋 第五 东郭 司空"
)
ALL_SURNAMES = SURNAMES | AMBIGUOUS_SURNAMES
# Characters usual in given names (and not particles or grammar words).
GIVEN = frozenset(
    "伟芳娜敏静丽强磊军洋勇艳杰娟涛明超秀英霞平刚桂华建国文辉玲萍红鹏飞云宇浩鑫波斌宁琳颖晶慧燕梅兰凤玉"
    "珍莉婷雪倩琴佳欣怡萱涵梓子轩睿博宸泽晨阳帆凯峰龙海林亮志成东新春生德福荣祥贵民利兴金山松清晓嘉思雨"
    "彤琪瑶璐露菲蕾薇妍婉嫣悦馨蕊洁晴岚琦瑜璇雯昕妮娅媛姗珊琼莹钰铭锦俊豪航远辰鸿毅彬哲健炜烨昊熙然晗逸"
    "铮翔旭昆坤鹤柏杨桐楠森彦卓越骏驰腾扬凡帅威武振家庆忠义礼仁孝良宏丹冰虹霖瑞祺琛瑾瑛璟珂珏琰璞琨玮"
    "炎焱淼江河洪淑贤惠芬芝芸芷苗茜莎萌蓉蓓菊荷莲桃樱梦秋冬月星光晖耀煜灿旻昱晟晋晏景智聪达畅顺安康"
    "乐欢喜吉宝珠翠环娇姣婕娴婧婵妙巧美雅柔馨心怡曦朝雷霆震宙乾鼎铁钢锋锐坚虎豹彪鹰雁鸣麟骥亭廷庭宗祖"
    "伦儿歌昌盛隆旺银琬影颜容芮菡姿若依伊诗书琴韵音念梦真纯澜漪溪泉源渊瀚广阔永恒泰寿禄娣妹姐兵卫军权斐蔚"
    "薇靖婕韬凌霄冉然岩崇嵩峻崎湘沁滢潇澄淳涵润泓浚瀚沐航舟帆楷栋梁材森彬斌杉桦椿槐樟枫柳薪蕴萍莺鹃"
    "燕鸥鸾凰翎羽翼飒爽晴暄暖熠炅炫烁焕煊熠勤俭敬恭谦诚信毅刚劲力功勋杰俊英豪雄伟健壮"
    "君玮仪妤蓁均宜庭翰廷丰俐佩琇钧纬维贤勋崴宥侑甯祯绮瑄芃芊沛歆颖葳咏茹湘承冠育恩圣鸿政昇修祐皓竣"
    "恒荣章蕙语芯伶贞菁秀莉筠萃琦嫚婕珺琪霓宓绫旖颐娉婷晞湄滢淇芮蔓茵荔苡苑茉琍珞璐樺桦岑崧嵘峥"
    "天元正立士青树保进胜守继启定培锡邦善令仙昭根群升怀兆亦炳显茂裕朗厚宪柱儒龄秉奎征烈辅甫存益尧钦彩碧季"
    "典资晏可奕弈彧忆恬悠愉懿昶晔曼朵栩桓楚榕毓汐沫浠涓湉澈濠灏煦玥珈珉珑珩瑀璨甜皎盈祉祎禾穗笙筱箐粲紫絮缨羚羲"
    "翀翊聆舒艺芙苒茗莞葭蝶诺谊迪铄锴霁霏韫骁"
)
# Written after a surname: 王先生, 李女士, 张老师, 刘总.
TITLES = (
    "先生", "小姐", "女士", "太太", "夫人", "老师", "经理", "师傅", "阿姨", "叔叔", "伯伯", "大爷", "大妈", "大姐",
    "大哥", "医生", "大夫", "律师", "同学", "老板", "主任", "队长", "科长", "处长", "局长", "部长", "校长", "院长",
    "教授", "博士", "护士", "警官", "主管", "专员", "总监", "店长", "组长", "老总", "总", "工", "姐", "哥", "姨",
    "叔", "爷", "奶奶", "爷爷", "同志", "助理", "秘书", "会计", "太", "生", "sir", "Sir", "姑娘", "伯", "婆", "公",
    "妈妈", "爸爸", "哥哥", "姐姐", "妹妹", "弟弟", "伯母", "婶婶", "阿婆", "阿公", "妈", "爸", "嫂", "嫂子", "老爷子",
    "董", "医师", "课长", "襄理", "协理", "特助", "司机", "学长", "学姐", "学弟", "学妹", "教练", "师父", "董事长", "总经理",
)
RELATIONS = (
    "老公", "老婆", "丈夫", "妻子", "爱人", "媳妇", "儿子", "女儿", "爸爸", "妈妈", "我爸", "我妈", "父亲", "母亲",
    "哥哥", "姐姐", "弟弟", "妹妹", "朋友", "同事", "室友", "邻居", "表姐", "表哥", "表妹", "表弟", "堂哥", "堂姐",
    "闺蜜", "男朋友", "女朋友", "男友", "女友", "对象", "同学", "领导", "老板", "客户", "婆婆", "公公", "岳母",
    "岳父", "孩子", "侄子", "侄女", "外甥", "外甥女", "奶奶", "爷爷", "外婆", "外公", "舅舅", "阿姨", "叔叔",
    "家人", "亲戚", "快递员", "快递小哥", "骑手", "客服", "同屋", "店员", "导购", "前台", "工人", "保姆", "司机",
)
# A name follows these directly (a strong cue may be followed by a word: "收件人严格", "收件人是娜娜").
STRONG_CUE = re.compile(
    r"(?:我叫|我名叫|名叫|叫做|名字是|名字叫|名字为|名字[:：]|姓名是|姓名为|姓名[:：]|姓名|全名是|真名是|本人是|"
    r"(?:收件人|收货人|联系人|签收人|寄件人|取件人|提货人|订货人|下单人|持卡人|开户人|付款人)"
    r"(?:姓名|名字|的名字)?(?:写的是|填的是|写成了|填成了|写成|填成|写的|填的|是|为|叫|写|填|[:：])?|"
    r"(?<![帮给替让请])(?:他|她|我|你|您|它|人|的|也)(?:的名字)?叫|(?:" + "|".join(RELATIONS) + r")(?:的名字)?叫)"
    r"[\s:：]*"
)
WEAK_CUE = re.compile(
    r"(?:寄给|送给|交给|转交给|转交|转给|发给|留给|递给|打给|联系|找|问|让|请|由|替|帮|和|跟|给|是|"
    r"改成|改为|换成|换为|写成|填成|写的|填的|签的|告诉|通知|转告|转达|麻烦|谢谢|感谢|叫|同|搵)(?:一下)?[\s:：]*"
)
RELATION_CUE = re.compile(r"(?:" + "|".join(RELATIONS) + r")[\s:：]*")
# Written right after a name: 晓雯帮我, 珍妮说, 家豪帮我签收, 小红和小军, 佩珊你好, 曹收 (on a parcel).
RIGHT_CUE = re.compile(
    r"(?:说|讲|话|是我|系我|就是我|帮我|帮忙|帮|替我|跟|和|同|下的|下了|下单|买的|订的|你好|您好|签收|代收|让我|叫我|都说|"
    r"也说|答应|告诉|打电话|打给|已经|收(?=$|[\s，。,.!！?？])|的(?:单|订单|包裹|快递|账号|帐号|手机|电话|生日|地址|卡))"
)
# "X是我老公", "平安是我儿子名字", "高明是我真名": X is a name even when it is also a word.
RIGHT_STRONG_CUE = re.compile(r"(?:是|系|就是)我(?:的)?(?:" + "|".join(RELATIONS) + r"|真名|名字|本名|全名|先生|太太)")
SURNAME_CUE = re.compile(r"(?:免贵|我|他|她|您|你|人|的|也|是)?姓(?!名)[\s:：]*")
# Look like names to the rules above but are brands, places or ordinary words (Simplified forms).
NOT_NAMES = _words(
    """李宁 华为 小米 苏宁 国美 方太 周大福 周生生 周黑鸭 王老吉 康师傅 老干妈 马应龙 江小白 金龙鱼 鲁花 白云山
    海尔 海信 格力 美的 康佳 长虹 创维 雷蛇 罗技 戴尔 惠普 宏碁 施华蔻 李锦记 金士顿 钟薛高 杨国福 张亮 蒙牛
    伊利 安踏 特步 贵人鸟 乔丹 汤臣倍健 林清轩 毛戈平 卫龙 白象 金锣 双汇 雨润 安井 三全 花西子 薇诺娜 丸美
    韩束 欧诗漫 佰草集 舒肤佳 潘婷 飘柔 沙宣 霸王 雕牌 立白 威露士 洁柔 维达 九阳 苏泊尔 华帝 万和 万家乐 史密斯
    林内 欧普 雷士 公牛 得力 晨光 齐心 倍思 绿联 安克 罗马仕 品胜 作业帮 好未来 万达 万科 恒大 马克思 周一 周二
    周三 周四 周五 周六 周日 周天 周末 张家口 张家界 石家庄 秦皇岛 唐山 邢台 邯郸 沈阳 郑州 许昌 周口 商丘 安阳
    焦作 洛阳 杭州 苏州 常州 温州 徐州 金华 宁波 台州 丽水 黄石 常德 邵阳 岳阳 衡阳 吉林 贵阳 武汉 柳州 桂林 钦州
    贺州 梅州 韶关 汕头 潮州 江门 林芝 昆明 安庆 宣城 宿州 阜阳 蚌埠 黄山 马鞍山 包头 鄂尔多斯 乌鲁木齐 白银 金昌
    武威 张掖 平凉 庆阳 安康 汉中 延安 宝鸡 宜宾 雅安 巴中 达州 广安 遂宁 龙岩 宁德 莆田 漳州 南平 三明 江苏 江西
    安徽 湖南 湖北 云南 贵州 广东 广西 海南 宁夏 甘肃 青海 西藏 新疆 台湾 香港 澳门 北京 上海 天津 重庆 黑龙江
    高兴 周到 马上 黄色 白色 金色 方便 安全 常常 于是 明白 明明 顾客 老公 老婆 老师 老板 老人 老家 老乡 小姐 小时
    小米 小白 小黄 小马 小钱 小号 小哥 小弟 小妹 小孩 小区 小店 谢谢 宝贝 师傅 王朝 王者 高峰 高潮 安静 康复 齐全
    叶子 洪水 白雪 白领 光荣 文明 文章 古老 高清 黄金 金额 余额 付款 时间 江湖 方向 车主 石头 高价 平安 和平
    阳光 金牛 金星 毛巾 钱包 花呗 高铁 武林 明星 贵宾 宁愿 向来 欧洲 欧美 欧元 华硕 戴森 管家 司机
    万一 万能 程序 余下 周岁 周年 周期 周边 高端 高级 高速 林业 白天 白菜 江边 黄瓜
    乐乐 包邮 包裹 包装 包括 任何 任务 温度 康师傅 华润 华联 万豪 希尔顿 洪湖 曹操 唐僧 孙悟空 关羽 诸葛亮
    小龙 小麦 小于 小康 小孔 小路 小牛 老伯 小史 老母 小车 小楼 小国 小农 老翁 小包 小费 小门 小花 小曲 小鹿 老练 老牛
    小毛 小童 小房 小商 老成 阿公 小项 老农 老路 老花 小盘 小班 小原 小豆 老汤 小利 小修 小景 阿伯 小苗 小石 小熊
    小井 小解 老井 小池 小巴 小宫 小乐 老边 小权 阿房 老豆 老房 老官 小羊 小支 小富 小官 小成 小幸 小于 老于 小时
    小区 小计 老大 老二 老三 老幺 高雄 台中 台南 台北 新北 桃园 新竹 基隆 嘉义 彰化 屏东 宜兰 花莲 台东 南投 云林
    苗栗 澎湖 金门 马祖 九龙 沙田 元朗 屯门 荃湾 铜锣湾 旺角 尖沙咀 湾仔 中环 西贡 大埔 上水 粉岭 东涌 葵涌 观塘
    成都 长沙 长春 南京 南昌 南宁 西安 合肥 福州 厦门 济南 青岛 大连 哈尔滨 太原 石河子 呼和浩特 兰州 西宁 银川 拉萨
    海口 三亚 珠海 佛山 东莞 惠州 中山 深圳 广州 无锡 南通 扬州 镇江 泰州 盐城 淮安 连云港 宿迁 绍兴 嘉兴 湖州 舟山
    衢州 烟台 潍坊 临沂 济宁 泰安 威海 日照 淄博 聊城 德州 滨州 菏泽 枣庄 保定 廊坊 沧州 衡水 承德 秦皇岛 大同 晋中
    运城 临汾 长治 晋城 吕梁 朔州 忻州 阳泉 鞍山 抚顺 本溪 丹东 锦州 营口 阜新 辽阳 盘锦 铁岭 朝阳 葫芦岛 牡丹江
    齐齐哈尔 佳木斯 大庆 鸡西 双鸭山 伊春 七台河 鹤岗 黑河 绥化 四平 辽源 通化 白山 松原 白城 延吉 芜湖 马鞍山 铜陵
    淮南 淮北 滁州 六安 亳州 池州 黄冈 咸宁 随州 恩施 十堰 襄阳 荆门 鄂州 孝感 湘潭 株洲 郴州 永州 怀化 娄底 益阳
    张家界 湘西 九江 赣州 吉安 宜春 抚州 上饶 景德镇 萍乡 新余 鹰潭 开封 平顶山 鹤壁 新乡 濮阳 漯河 三门峡 南阳 信阳
    驻马店 济源 绵阳 德阳 自贡 泸州 内江 乐山 南充 眉山 广元 资阳 攀枝花 凉山 遵义 六盘水 安顺 毕节 铜仁 曲靖 玉溪
    保山 昭通 丽江 普洱 临沧 大理 红河 文山 西双版纳 咸阳 渭南 铜川 榆林 商洛 天水 酒泉 嘉峪关 定西 陇南 石嘴山
    吴忠 固原 中卫 克拉玛依 吐鲁番 哈密 喀什 和田 阿克苏 伊犁 北海 防城港 玉林 百色 河池 来宾 崇左 梧州 贵港
    三沙 儋州 东方 万宁 琼海 文昌
    盖子 盖章 付清 马达 胡子 孙子 王子 卫星 雷达 温泉 金刚 栗子 李子 梅子 杨梅 胡桃 麦冬 白玉 金山 龙虎 马儿 燕子 林子
    苗子 雷雨 梅雨 冷清 安然 安逸 温馨 祝福 华丽 卓越 高超 高薪 高明 智慧 权威 吉祥 宁静 洪亮 殷勤 辛勤 温顺 麻利 高雅
    文雅 温雅 富丽 华贵 师生 师姐 师兄 孙儿 花环 花蕾 花红 白光 金光 蓝光 冷光 余光 荣光 白云 白鹤 白杨 白桦 金秋 严冬
    阳春 牟利 封山 柏林 丛林 石英 陆军 武功 练功 练武 练兵 马虎 王冠 桂冠 沙龙 柯达 毛利 贺礼 薄礼 贺信 贺喜 祝寿 康乐
    迪奥 香奈儿 兰蔻 雅诗兰黛 安娜苏 娇兰 纪梵希 圣罗兰 古驰 普拉达 爱马仕 路易威登 卡地亚 蒂芙尼 施华洛世奇 欧莱雅
    资生堂 倩碧 海蓝之谜 娇韵诗 尼康 佳能 索尼 安卓 耐克 阿迪达斯 彪马 锐步 斐乐 飞利浦 西门子 博世 戴森 迪士尼 乐高 宜家 沃尔玛 家乐福
    麦当劳 肯德基 星巴克 必胜客 汉堡王 奥利奥 德芙 雀巢 可口可乐 百事 联想 三星 诺基亚 摩托罗拉 微软 谷歌 亚马逊 特斯拉 奔驰 宝马 奥迪
    丰田 本田 马自达 福特 雪佛兰 凯迪拉克 保时捷 法拉利 劳力士 欧米茄 浪琴 天梭 卡西欧 松下 夏普 东芝 日立 任天堂 科勒 安慕希 特仑苏
    好丽友 丽人 汤姆猫 米老鼠 唐老鸭 小猪佩奇 佩奇 乔治猪 艾莎 哈利波特
    荣华 花白 黄泉 古琴 胡琴 诸位 诸君 王权 权贵 廉政 施政 郎君 富豪 祖宗 文武 左翼 边远 丛生 伏兵 党羽 齐鸣 小姐姐 小哥哥 荣耀 夏威夷 王者荣耀
    """
)
_NEVER_NAME_FLAGS = _words("r v d p c u uj ul uv uz ud ug y m q t f x e o h k mq eng")
_HAN = re.compile(r"[\u4e00-\u9fff]")
_LATIN_NAME = re.compile(r"[A-Za-z][a-z'.-]*(?:[ ][A-Z][A-Za-z'.-]*){0,2}")
_PLACE_AFTER = re.compile(r"(?:市|省|县|区|镇|乡|村|路|街|大街|大道|站|专卖店|旗舰店|门店|牌|集团|公司|大学|银行|机场|酒店|"
                          r"医院|商场|广场|大厦|公园|体育)")
_REDUPLICATED_WORDS = _words(
    "明明 刚刚 常常 好好 天天 渐渐 慢慢 看看 试试 等等 想想 说说 谢谢 问问 偏偏 往往 仅仅 稍稍 默默 悄悄 轻轻 处处 "
    "人人 个个 样样 多多 大大 小小 早早 快快 统统 通通 纷纷 久久 深深 紧紧 妈妈 爸爸 哥哥 姐姐 弟弟 妹妹 爷爷 奶奶 "
    "叔叔 伯伯 舅舅 姥姥 宝宝 哈哈 呵呵 嘻嘻 嘿嘿 拜拜 行行 对对 是是 好好 走走 聊聊 查查 帮帮 催催 退退"
)
# Characters that start a given name only when another name character follows: 王大明, 李小红.
_FIRST_ONLY = frozenset("大小之一")
_RARE_WORD = 400  # a two-character word seen more often than this in jieba's corpus is no given name (英文, 礼品)
_GRAMMAR_FLAGS = _words("r d p c u uj ul uv uz ud ug y m f e o h k mq eng")
_PLACE_LAST = frozenset("堂寺庙馆院宫殿阁楼桥湖港湾镇村寨厂站店铺场园")
_PARCEL_END = re.compile(r"收(?=$|[\s，。,.!！?？])")
_CUE_STOP = _words("我 我们 你 你们 他 她 他们 她们 谁 什么 本人 自己 人家 大家 别人 对方 这个 那个 一个 哪个 啥")


class ChineseNames:
    """Finds person names in Chinese text. Thread-safe; jieba and OpenCC load on first use (~1 s)."""

    def __init__(self) -> None:
        self._lock = threading.Lock()
        self._convert_lock = threading.Lock()  # one OpenCC converter, not documented as thread-safe
        self._pos: Any = None
        self._t2s: Any = None

    def _load(self) -> tuple[Any, Any]:
        with self._lock:
            if self._pos is None:
                import logging

                import jieba
                import jieba.posseg
                import opencc

                jieba.setLogLevel(logging.WARNING)
                tokenizer = jieba.Tokenizer()  # our own: words added to jieba elsewhere don't change names
                tokenizer.initialize()
                self._t2s = opencc.OpenCC("t2s")
                self._pos = jieba.posseg.POSTokenizer(tokenizer)
            return self._pos, self._t2s

    def simplified(self, text: str) -> str:
        """``text`` in Simplified characters, same length (a character whose conversion would change
        the length is kept as it is)."""
        _, t2s = self._load()
        with self._convert_lock:
            out = t2s.convert(text)
            if len(out) == len(text):
                return out
            return "".join(c if len(c) == 1 else o for o, c in ((o, t2s.convert(o)) for o in text))

    def find(self, text: str) -> list[tuple[int, int]]:
        """(start, end) of every person name, merged where they touch."""
        if not _HAN.search(text):
            return []
        pos, _ = self._load()
        s = self.simplified(text)
        tokens: list[tuple[int, int, str, str]] = []
        at = 0
        for pair in pos.cut(s, HMM=False):
            tokens.append((at, at + len(pair.word), pair.word, pair.flag))
            at += len(pair.word)
        return _merge(_Finder(s, tokens, pos.tokenizer.FREQ).spans())


class _Finder:
    def __init__(self, s: str, tokens: list[tuple[int, int, str, str]], freq: dict[str, int]) -> None:
        self.s = s
        self.freq = freq
        self.tokens = tokens
        self.starting = {t[0]: i for i, t in enumerate(tokens)}
        self.forced: set[tuple[int, int]] = set()  # names the context vouches for even if NOT_NAMES lists the word
        self.cue_ends: dict[int, str] = {}  # position right after a cue -> "strong" / "weak" / "surname"
        for kind, pattern in (("weak", WEAK_CUE), ("relation", RELATION_CUE), ("strong", STRONG_CUE),
                              ("surname", SURNAME_CUE)):
            for m in pattern.finditer(s):
                if m.end() > m.start():
                    self.cue_ends[m.end()] = kind

    def spans(self) -> list[tuple[int, int]]:
        found: list[tuple[int, int]] = []
        for k, (start, end, word, flag) in enumerate(self.tokens):
            if word in NOT_NAMES and self.cue_ends.get(start) != "strong":
                continue
            span = self._at_token(k, start, end, word, flag)
            if span:
                found.append(span)
        for p, kind in self.cue_ends.items():
            span = self._after_cue(p, kind)
            if span:
                found.append(span)
        for k in range(len(self.tokens)):
            span = self._alone(k)
            if span:
                found.append(span)
        return [sp for sp in found if sp in self.forced or (not self._place_or_brand(sp)
                and (self.s[sp[0]:sp[1]] not in NOT_NAMES or self.cue_ends.get(sp[0]) == "strong"))]

    # -- rules -----------------------------------------------------------------------------------
    def _at_token(self, k: int, start: int, end: int, word: str, flag: str) -> tuple[int, int] | None:
        cue = self.cue_ends.get(start)
        sur = _surname_prefix(word)
        if sur and len(word) == len(sur):  # a surname standing alone: 张 伟, 王 秀英, 欧阳 娜娜
            return self._surname_token(k, start, end, word, flag, cue)
        if flag.startswith("nr") and len(word) >= 2:
            if sur and 1 <= len(word) - len(sur) <= 2:
                given = word[len(sur):]
                if given in TITLES:
                    return (start, end)  # 张老师, 王经理: jieba took the title in
                if word[-1] in _PLACE_LAST or (word[0] in AMBIGUOUS_SURNAMES and len(word) == 2
                                               and not (cue or self._title_at(end))):  # 纪念堂, 和平
                    return None
                some = any(c in GIVEN for c in given)
                if _name_chars(given) or (some and (cue or self._title_at(end) or (len(given) == 2 and sur in SURNAMES))):
                    return (start, self._grow(k, end, len(given)))
                return None
            if len(word) == 2 and word[0] in "小老阿" and (word[1] in ALL_SURNAMES or word[1] in GIVEN):
                return (start, end)  # 老李, 阿明
            if len(word) == 2 and word[0] == word[1] and word[0] in GIVEN:
                return (start, end)  # 娜娜, 丽丽 (adverbs like 明明 are in NOT_NAMES)
            return (start, end) if cue in ("strong", "relation") and word not in _CUE_STOP else None
        if len(word) == 2 and word[0] in "小老" and word[1] in ALL_SURNAMES:
            return (start, end)  # 小张, 老马: dictionary words, but the nouns among them are in NOT_NAMES
        if len(word) == 2 and word[0] == word[1] and _HAN.match(word) and word not in _REDUPLICATED_WORDS and cue:
            return (start, end)  # 儿子浩浩, 女儿甜甜 (浩浩 and 甜甜 are also adjectives)
        if word in ("小", "老", "阿") and k + 1 < len(self.tokens):
            n_start, n_end, n_word, n_flag = self.tokens[k + 1]
            if word == "阿" and n_flag == "eng" and n_word[:1].isupper() and n_word.isalpha():
                return (start, n_end)  # 阿May, 阿John (Hong Kong)
            if len(n_word) == 1 and (n_word in SURNAMES or (n_word in GIVEN and (cue or word == "阿"))):
                return (start, n_end)
            taken = len(n_word) == 2 and n_word[0] in SURNAMES and n_word[1] not in GIVEN and n_word not in NOT_NAMES
            if word != "阿" and taken:
                return (start, n_start + 1)  # 小/陈说: the dictionary took the surname into the next word
        return None

    def _alone(self, k: int) -> tuple[int, int] | None:
        """A given name with no surname, told by its context: 珍妮说, 晓/雯帮我, 小/红和小/军, 高明是我真名."""
        start, end, word, flag = self.tokens[k]
        if not _HAN.match(word) or word in _CUE_STOP or word in RELATIONS or word in TITLES:
            return None
        cue = self.cue_ends.get(start)
        clause_start = start == 0 or not _HAN.match(self.s[start - 1])
        if 2 <= len(word) <= 3 and clause_start and RIGHT_STRONG_CUE.match(self.s, end) and (
            flag.startswith("nr") or _surname_prefix(word) or (_name_chars(word) and flag not in _NEVER_NAME_FLAGS)
        ):
            self.forced.add((start, end))
            return (start, end)
        if word in NOT_NAMES and not (len(word) == 2 and word[0] in "小阿" and RIGHT_CUE.match(self.s, end)):
            return None
        if 2 <= len(word) <= 4 and flag.startswith("nr") and _surname_prefix(word) is None:
            if word[-1] not in _PLACE_LAST and (cue or RIGHT_CUE.match(self.s, end)):  # not 纪念堂, 清真寺
                if word in NOT_NAMES:
                    self.forced.add((start, end))  # 店员小龙说
                return (start, end)
            return None
        if len(word) == 1 and k + 1 < len(self.tokens) and flag not in _GRAMMAR_FLAGS:
            n_start, n_end, n_word, n_flag = self.tokens[k + 1]
            if (len(n_word) == 1 and n_word in GIVEN and n_flag not in _GRAMMAR_FLAGS and n_word not in TITLES
                    and (word in GIVEN or word in "小阿") and (cue or RIGHT_CUE.match(self.s, n_end))):
                return (start, n_end)
        return None

    def _grow(self, k: int, end: int, given: int) -> int:
        """A one-character given name that jieba split from the next character: 张家/豪."""
        if given == 1 and k + 1 < len(self.tokens):
            n_start, n_end, n_word, n_flag = self.tokens[k + 1]
            if len(n_word) == 1 and n_word in GIVEN and not self._title_at(n_start):
                return n_end
        return end

    def _surname_token(self, k: int, start: int, end: int, word: str, flag: str, cue: str | None) -> tuple[int, int] | None:
        if self._title_at(end):
            return (start, self.tokens[k + 1][1])
        if start > 0 and self.s[start - 1] in "小老" and (start - 1) in self.starting:
            return (start - 1, end)  # 小王, 老李 (jieba took 小 as a word of its own)
        given_end = self._given_at(k + 1)
        if given_end is None and _PARCEL_END.match(self.s, end):
            return (start, end)  # 曹收: a surname written on a parcel
        if given_end is None and cue and k + 1 < len(self.tokens):
            n_end, n_word = self.tokens[k + 1][1], self.tokens[k + 1][2]
            alone = n_end >= len(self.s) or not _HAN.match(self.s[n_end])
            if len(n_word) == 2 and n_word[0] == n_word[1] and _HAN.match(n_word) and (
                    n_word not in _REDUPLICATED_WORDS or alone):
                return (start, n_end)  # 写的是钱/多多
            if len(n_word) == 2 and n_word[0] in _FIRST_ONLY and cue in ("strong", "relation"):
                return (start, n_end)  # 快递员王/大锤
        if given_end is None and cue in ("strong", "relation") and k + 1 < len(self.tokens):
            n_word = self.tokens[k + 1][2]
            if len(n_word) >= 2 and n_word[0] in GIVEN and not self._title_at(end):
                return (start, end + 1)  # 表哥唐/宇下: the dictionary took the given name into the next word
        if given_end is None:
            return (start, end) if cue == "surname" else None
        if self._title_at(given_end):
            return (start, self.tokens[self.starting[given_end]][1])
        ambiguous = len(word) == 1 and word in AMBIGUOUS_SURNAMES
        nr = flag.startswith("nr") or self.tokens[k + 1][3].startswith("nr")
        if cue or (not ambiguous and (nr or len(word) == 2 or word in SURNAMES)):
            return (start, given_end)
        return None

    def _given_at(self, k: int) -> int | None:
        """End of a given name starting at token ``k``: one or two name characters, or a word jieba
        tags as a person name (秀英), or a two-character word made of name characters (浩然)."""
        if k >= len(self.tokens):
            return None
        start, end, word, flag = self.tokens[k]
        if len(word) == 2 and word[0] == word[1] and word[0] in GIVEN:
            return end  # 蔡/明明, 孙/丽丽 (明明 alone is an adverb)
        if not _HAN.match(word) or word in NOT_NAMES or self._title_at(start):
            return None
        if flag.startswith("nr") and (len(word) == 2 or word in GIVEN) and _surname_prefix(word) is None:
            if len(word) == 1 and k + 1 < len(self.tokens) and self.tokens[k + 1][2] in GIVEN:
                return self.tokens[k + 1][1]  # 黄 梓 萱
            return end
        if len(word) == 2 and word[0] in GIVEN and RIGHT_CUE.match(self.s, start + 1) and not RIGHT_CUE.match(word):
            return start + 1  # 诸葛/明说: the dictionary took the verb after the name into a word
        if len(word) == 1 and word in _FIRST_ONLY and k + 1 < len(self.tokens):
            n_start, n_end, n_word, n_flag = self.tokens[k + 1]
            if len(n_word) == 1 and n_word in GIVEN and not self._title_at(n_start):
                return n_end
        if len(word) == 1 and word in GIVEN:
            if k + 1 < len(self.tokens):
                n_start, n_end, n_word, n_flag = self.tokens[k + 1]
                if len(n_word) == 1 and n_word in GIVEN and not self._title_at(n_start):
                    return n_end
            return end
        rare = flag.startswith("nr") or self.freq.get(word, 0) <= _RARE_WORD
        if len(word) == 2 and _name_chars(word) and flag not in _NEVER_NAME_FLAGS and rare:
            return end
        return None

    def _after_cue(self, p: int, kind: str) -> tuple[int, int] | None:
        s = self.s
        if p >= len(s):
            return None
        m = _LATIN_NAME.match(s, p)
        if m and (kind == "strong" or (kind == "relation" and s[p].isupper())):
            return (p, m.end())
        if not _HAN.match(s[p]):
            return None
        sur = next((c for c in COMPOUND_SURNAMES if s.startswith(c, p)), None) or (s[p] if s[p] in ALL_SURNAMES else None)
        if kind == "surname":
            return (p, p + len(sur)) if sur else None
        k = self.starting.get(p)
        if k is not None:
            start, end, word, flag = self.tokens[k]
            if word in _CUE_STOP or word in RELATIONS or (word in NOT_NAMES and kind != "strong"):
                return None
            if sur and len(word) == len(sur):  # handled by the token rules, which see the cue
                return None
            rare = flag.startswith("nr") or self.freq.get(word, 0) <= _RARE_WORD
            if 2 <= len(word) <= 4 and flag not in _NEVER_NAME_FLAGS and (
                (kind == "strong" and (rare or sur or _name_chars(word))) or (kind == "relation" and (flag.startswith("nr") or (_name_chars(word) and rare)))
            ):
                return (start, end)
            if kind in ("strong", "relation") and len(word) == 1 and word in GIVEN and not sur:
                given_end = self._given_at(k)  # 阿姨/秀/兰: a given name in single characters
                if given_end is not None and given_end - start >= 2:
                    return (start, given_end)
        if sur and kind == "strong":  # the cue's last character was taken into a word: 叫赖/文峰
            n = p + len(sur)
            while n < len(s) and n - p - len(sur) < 2 and s[n] in GIVEN:
                n += 1
            return (p, n) if n > p + len(sur) else None
        return None

    def _title_at(self, p: int) -> bool:
        k = self.starting.get(p)
        return k is not None and self.tokens[k][2] in TITLES

    def _place_or_brand(self, span: tuple[int, int]) -> bool:
        """张家口市, 李宁专卖店: a name-like word followed by what places and brands are followed by."""
        if self.cue_ends.get(span[0]) == "strong":
            return False
        k = self.starting.get(span[1])
        return k is not None and bool(_PLACE_AFTER.fullmatch(self.tokens[k][2]))


def _name_chars(given: str) -> bool:
    """Characters usual in a given name: 伟, 秀英; 大 and 小 only before another (大明, 小红)."""
    if len(given) >= 2 and given[0] in _FIRST_ONLY:
        given = given[1:]
    return all(c in GIVEN for c in given)


def _surname_prefix(word: str) -> str | None:
    if word[:2] in COMPOUND_SURNAMES:
        return word[:2]
    return word[0] if word[0] in ALL_SURNAMES else None


def _merge(spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out: list[tuple[int, int]] = []
    for start, end in sorted(spans):
        if out and start <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], end))
        else:
            out.append((start, end))
    return out
