"""What people say and what officers write: short Chinese texts by issue category.

The platform encrypts every one of these under the person's key; they exist so the
stores hold what a bureau's would (and the encryption path is exercised), not to be read.
"""

from __future__ import annotations

import random

DEMANDS: dict[str, tuple[str, ...]] = {
    "theft": (
        "家里被盗，门锁被撬，请派人来看看",
        "电瓶车在小区楼下被偷了",
        "店里收银台的钱被人拿走了",
    ),
    "fraud": ("接到冒充客服的电话，被骗转账了，请帮忙止付", "网上刷单被骗了两万元"),
    "fight": ("饭店门口有人打架，已经有人受伤", "楼下有人持械斗殴，请马上派人"),
    "dispute": ("和邻居因为停车位吵起来了，需要民警调解", "工地老板拖欠工资，工人围堵现场"),
    "traffic_accident": ("路口两车相撞，双方在争执，请来处理", "被电动车撞了，对方想走"),
    "noise": ("楼上深夜装修噪音太大，影响休息", "广场舞音响太吵，多次劝说无效"),
    "domestic_violence": ("丈夫喝酒后动手打人，请快来", "家里有人施暴，孩子很害怕"),
    "missing_person": ("家里老人出门散步一直没回来，有老年痴呆", "孩子放学没有回家，联系不上"),
    "robbery": ("刚才在路上被人抢了包", "有人拿刀抢手机，往东边跑了"),
    "harassment": ("有人一直跟踪骚扰我", "有人在网上发帖辱骂威胁我"),
    "drunk": ("有人醉酒在店里闹事，砸东西", "路边有人喝醉躺在马路上"),
    "sexual_offence": ("公交车上有人猥亵，已经拉住了",),
    "juvenile": ("几个未成年人在网吧打架",),
    "death_or_serious_injury": ("发现有人倒在河边，没有反应",),
    "locked_out": ("钥匙锁在家里了，孩子一个人在屋里", "老人被反锁在屋里出不来"),
    "lost_item": ("在出租车上丢了钱包和身份证", "手机落在公园长椅上了"),
    "elderly_lost": ("路边有位老人迷路了，说不清家住哪里",),
    "medical_help": ("路上有人突发疾病晕倒，需要帮助",),
    "animal": ("小区里有流浪狗咬人", "家里进了一条蛇，不敢动"),
    "utilities": ("小区停水一天了，物业不管", "路灯坏了好几天，晚上很黑", "下水道堵了污水漫到路上"),
    "stranded": ("车子在山路上抛锚了，天黑了", "外地来打工，钱包丢了回不了家"),
    "mental_health": ("家里人情绪激动，扬言要轻生",),
    "household_registration": ("想咨询孩子落户需要什么材料", "户口迁移需要办哪些手续"),
    "id_card": ("身份证丢了，补办要带什么", "身份证快到期了，可以异地换领吗"),
    "exit_entry": ("办护照需要预约吗", "港澳通行证续签怎么办理"),
    "traffic_license": ("驾驶证到期换证需要体检吗", "车辆年检逾期了怎么处理"),
    "legal": ("被人借钱不还，报警有用吗", "房东不退押金怎么办"),
    "residence_permit": ("外地人办居住证需要什么条件", "居住证可以网上续签吗"),
    "case_progress": ("上个月报的盗窃案有进展吗", "我报的诈骗案什么时候能追回钱"),
    "no_crime_certificate": ("单位要求开具无犯罪记录证明",),
    "exit_entry_permit": ("办理护照", "办理港澳通行证"),
    "vehicle_registration": ("新车上牌", "二手车过户"),
    "driving_license": ("驾驶证补领", "驾驶证期满换证"),
    "case_handling": ("对派出所处理邻里纠纷的结果不服，要求重新处理", "案件拖了半年没有结果"),
    "compensation": ("被打伤后对方不赔偿，要求公安机关处理",),
    "land_dispute": ("村里宅基地纠纷多年未解决，要求政府协调",),
    "law_enforcement": ("认为交警罚款不合理，要求复核",),
    "patrol": ("建议晚上多到小区周边巡逻", "学校门口上下学时间希望有民警值守"),
    "traffic_order": ("路口经常拥堵，建议增加信号灯", "电动车逆行太多，希望加强管理"),
    "service_hours": ("希望户籍窗口周末也能办业务", "建议延长出入境窗口办公时间"),
    "public_security": ("小区最近有陌生人发小广告，担心安全", "夜宵摊附近经常有人喝酒闹事"),
    "station_environment": ("派出所门口停车太难了", "办事大厅等候座位太少"),
    "gambling": ("村里有人聚众赌博", "某棋牌室里有赌博"),
    "drugs": ("怀疑出租屋里有人吸毒",),
    "prostitution": ("某足浴店可能有违法活动",),
    "fraud_clue": ("发现一个冒充公检法的诈骗号码", "网上有人招聘刷单，疑似诈骗"),
    "illegal_business": ("有人在无证经营黑加油点",),
    "fugitive": ("好像看到通缉照片上的人在附近出现",),
    "attitude": ("民警态度恶劣，说话难听", "窗口工作人员爱理不理，门难进脸难看"),
    "inaction": ("报警后一直没人来处理", "多次反映问题，派出所推诿不管"),
    "misconduct": ("民警执法时动手推搡", "扣押物品没有给任何手续"),
    "unfair_enforcement": ("同样的事情，本地人没事，外地人被罚", "处理纠纷明显偏袒对方"),
    "corruption": ("办事时被暗示要好处费",),
    "service_delay": ("一个证明跑了四趟还没办下来", "材料交了一个月没有回音"),
    "discipline": ("民警上班时间玩手机", "警车私用接孩子"),
    "other": ("对派出所的工作有意见",),
}
HOPES = ("希望尽快处理", "希望有个说法", "希望民警尽快到场", "希望帮忙解决", "希望以后不再发生")
REPLIES = {
    "alarm": (
        "已到场处置，事态平息，已告知当事人后续事项",
        "已调解，双方达成和解",
        "已立案侦查，告知报警人案件进展查询方式",
    ),
    "help": ("已协助解决，群众表示感谢", "已联系家属接回", "已帮助联系相关单位处理"),
    "consultation": ("已电话告知办理流程和所需材料", "已解答，并告知可在浙里办网上办理"),
    "service": ("已办结，证件已领取", "已受理并办结，告知领证时间"),
    "petition": ("经调查核实，已书面答复信访人处理意见", "已协调相关部门解决，书面答复信访人"),
    "opinion": ("感谢您的建议，已安排加强巡逻", "建议已采纳，已告知改进措施"),
    "tip": ("线索已核查，感谢您的举报", "已转相关部门查处，感谢举报"),
}
OPINIONS = (
    "希望多来村里走走",
    "民警很负责，很满意",
    "反映的问题一直没解决",
    "希望加强夜间巡逻",
    "没什么意见",
)
COMMENTS = {
    "satisfied": ("民警来得很快，处理得很好", "态度很好，谢谢", "办事效率高"),
    "basically_satisfied": ("还可以，就是等得有点久", "处理了，但结果一般"),
    "dissatisfied": ("等了很久才来人", "民警态度不好", "问题根本没解决", "跑了好几趟还没办好"),
}
ISSUES = ("路口没有红绿灯，老人过马路很危险", "小区监控坏了很久没人修", "村里有人经常醉酒闹事",
          "邻居养狗不拴绳", "希望帮忙办理老人身份证", "夜里有陌生车辆在村口停留")  # fmt: skip


def demand(rng: random.Random, category: str) -> str:
    return rng.choice(DEMANDS.get(category, DEMANDS["other"]))


def reply(rng: random.Random, kind: str) -> str:
    return rng.choice(REPLIES.get(kind, REPLIES["consultation"]))


def comment(rng: random.Random, satisfaction: str) -> str:
    return rng.choice(COMMENTS[satisfaction])
