"""Column headers of the exported reports (CSV, xlsx) in each language: the metric keys as they are
(`en`, the stable names scripts read) or in Chinese (`zh`, for managers reading the sheet).

kpi.yaml's `metric_names` (what /reports shows) win over these for the metrics they name, so a site
that renames a metric sees the same name on the page and in the sheet.
"""

from __future__ import annotations

from typing import Any

ZH: dict[str, str] = {
    # groupings
    "halfhour": "半小时", "hour": "小时", "day": "日期", "week": "周", "month": "月", "band": "时段",
    "queue": "队列", "tier": "客户等级", "agent": "坐席",
    # traffic
    "calls_offered": "呼入量", "ivr_calls": "IVR 呼入", "ivr_contained": "自助服务完成",
    "ivr_containment_rate": "自助完成率", "agent_requests": "转人工请求", "queued": "进入排队",
    "queued_rate": "排队比例", "in_queue": "正在排队", "blocked": "拒接（队列满/关闭）",
    # answering
    "answered": "人工接通", "answered_share": "人工受理占比", "answered_rate": "排队接通率",
    "sl_offered": "服务水平基数", "answered_within_sl": "及时接听量", "service_level": "服务水平",
    "asa_s": "平均应答速度（秒）", "avg_queue_s": "平均排队时长（秒）",
    # loss
    "abandoned": "放弃", "short_abandoned": "短时放弃", "abandoned_counted": "计入放弃",
    "abandon_rate": "放弃率", "avg_abandon_s": "平均放弃时长（秒）", "abandoned_ringing": "振铃中放弃",
    "est_patience_s": "估计耐心时长（秒）", "overflowed": "溢出未接", "timed_out": "超时溢出",
    "callbacks": "预约回拨", "callbacks_after_abandon": "放弃后回拨", "call_loss": "呼损量",
    "call_loss_rate": "呼损率", "ivr_connection_rate": "自动接通率", "agent_connection_rate": "人工接通率",
    "customer_loss_rate": "客户呼损率", "transferred_calls": "转接来电", "transfer_rate": "转接率",
    # outcomes
    "fcr_eligible": "一次解决基数", "fcr_resolved": "一次解决量", "fcr_rate": "一次解决率",
    # handling
    "offers": "分配次数", "ring_no_answer": "振铃未接", "handled": "处理完成", "transfers": "转接次数",
    "avg_talk_s": "平均通话（秒）", "avg_hold_s": "平均保持（秒）", "avg_ring_s": "平均振铃（秒）",
    "logged_in_s": "签入时长（秒）", "available_s": "空闲时长（秒）", "on_call_s": "通话时长（秒）",
    "direct_s": "非ACD通话时长（秒）",
    "wrap_s": "话后时长（秒）", "not_ready_s": "未就绪时长（秒）", "avg_acw_s": "平均话后处理（秒）",
    "occupancy": "坐席利用率", "staffed_hours": "在岗小时", "calls_per_staffed_hour": "每小时处理量",
    "aht_s": "平均处理时长（秒）",
    # dispositions, work orders, satisfaction
    "dispositions": "话务小结", "dispositions_resolved": "小结为已解决", "workorders_opened": "工单新建",
    "workorders_closed": "工单办结", "workorders_closed_on_time": "工单按时办结",
    "workorder_on_time_rate": "工单按时办结率", "workorders_reopened": "工单重开",
    "workorder_reopen_rate": "工单重开率", "survey_responses": "满意度评价数", "survey_avg_score": "满意度平均分",
    "satisfaction_callbacks_due": "应回访", "satisfaction_callbacks_done": "已回访",
    "satisfaction_callback_rate": "回访率", "qc_inspected": "质检通话", "qc_avg_score": "质检平均分",
    "qc_pass_rate": "质检合格率", "qc_fatal": "质检致命差错",
    # tiers sheet
    "threshold_s": "目标时长（秒）", "target": "目标", "met": "达标",
    "TOTAL": "合计",
}
LANGS = ("en", "zh")


def header(key: str, lang: str, site_names: dict[str, Any] | None = None) -> str:
    """The column header of `key` in `lang` (en: the key itself)."""
    if lang != "zh":
        return key
    named = (site_names or {}).get(key)
    if named is not None:
        zh = named.get("zh") if isinstance(named, dict) else getattr(named, "zh", None)
        if zh:
            return str(zh)
    return ZH.get(key, key)
